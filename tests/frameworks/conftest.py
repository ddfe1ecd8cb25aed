import pytest

pytest.register_assert_rewrite("tests.frameworks.compat")
