"""A URLconf that does not mount mizan_hub.urls (tests/test_checks_adoption.py)."""

urlpatterns: list = []
