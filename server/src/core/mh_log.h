/*
 * mh_log — one line per event, filtered by level before any formatting.
 *
 * MH_LOG checks the level first, so a debug line on the hot path costs one
 * comparison when debug is off. Lines go to stderr as text or JSON.
 */
#ifndef MH_LOG_H
#define MH_LOG_H

enum { MH_LOG_DEBUG = 0, MH_LOG_INFO = 1, MH_LOG_WARN = 2, MH_LOG_ERROR = 3 };

extern int mh_log_level;

/** Sets the level and format ("text" or "json"); 'component' prefixes each line (e.g. "w1"). */
void mh_log_setup(int level, int json, const char *component);

/** Level from its name ("debug", "info", "warn", "error"); -1 if unknown. */
int mh_log_level_from(const char *name);

void mh_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define MH_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= mh_log_level)                                                               \
            mh_log_write((level), __VA_ARGS__);                                                    \
    } while (0)

#define mh_debug(...) MH_LOG(MH_LOG_DEBUG, __VA_ARGS__)
#define mh_info(...) MH_LOG(MH_LOG_INFO, __VA_ARGS__)
#define mh_warn(...) MH_LOG(MH_LOG_WARN, __VA_ARGS__)
#define mh_error(...) MH_LOG(MH_LOG_ERROR, __VA_ARGS__)

#endif
