"""The remedy contract, over every registered remedy: built-ins and any
installed plugin (the example plugin package, installed for the tests)."""

from remedysweep.engine.runtime import configure_tensorflow
from remedysweep.remedies import discover
from remedysweep.testing import check_registry, parametrize_with_checks

configure_tensorflow()


@parametrize_with_checks()
def test_remedy_contract(remedy, check):
    # Each check raises AssertionError naming the remedy and what it broke.
    assert check(remedy) is None


def test_registry_names_unique_descriptions_nonempty():
    check_registry(discover())
    assert "focal_loss" in discover()  # the example plugin, through its entry point
