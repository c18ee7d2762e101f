from django.db import models


class Todo(models.Model):
    title = models.CharField(max_length=200)
    done = models.BooleanField(default=False)
    list_id = models.IntegerField(default=1)

    class Meta:
        app_label = "testapp"


class Note(models.Model):
    """Watched with @watch in a test, not through settings."""

    text = models.CharField(max_length=200)
    owner = models.ForeignKey("auth.User", null=True, on_delete=models.CASCADE)

    class Meta:
        app_label = "testapp"
