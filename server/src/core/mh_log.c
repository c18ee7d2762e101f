#include "mh_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "mh_buf.h"
#include "mh_json.h"

int mh_log_level = MH_LOG_INFO;
static int log_json;
static char log_component[32] = "hub";

static const char *names[] = {"debug", "info", "warn", "error"};

void mh_log_setup(int level, int json, const char *component)
{
    mh_log_level = level;
    log_json = json;
    snprintf(log_component, sizeof log_component, "%s", component);
}

int mh_log_level_from(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, names[i]))
            return i;
    return -1;
}

void mh_log_write(int level, const char *fmt, ...)
{
    char msg[1024], ts[40];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    if (log_json) {
        mh_buf b;
        mh_buf_init(&b);
        mh_buf_printf(&b, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"proc\":", ts,
                      (long)tv.tv_usec / 1000, names[level & 3]);
        mh_json_put_string(&b, log_component, strlen(log_component));
        mh_buf_puts(&b, ",\"msg\":");
        mh_json_put_string(&b, msg, strlen(msg));
        mh_buf_puts(&b, "}\n");
        if (!b.oom)
            fwrite(b.data, 1, b.len, stderr);
        mh_buf_free(&b);
    } else {
        fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", ts, (long)tv.tv_usec / 1000, names[level & 3],
                log_component, msg);
    }
}
