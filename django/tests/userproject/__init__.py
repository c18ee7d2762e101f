"""A user-style project for tests/test_testing_userproject.py: test settings
without Redis, and a TestCase module and a pytest module as a team would
write them (their names do not match test_*.py: the suite runs them in
their own process, under Django's runner and under pytest-django)."""
