"""The remedy contract, over every registered remedy: built-ins and any
installed plugin (the example plugin package included when installed)."""

from remedysweep.remedies import discover
from remedysweep.remedies.contract import check_registry, parametrize_with_checks
from remedysweep.runner.trial import configure_tensorflow

configure_tensorflow()


@parametrize_with_checks()
def test_remedy_contract(remedy, check):
    # Each check raises AssertionError naming the remedy and what it broke.
    assert check(remedy) is None


def test_registry_names_unique_descriptions_nonempty():
    check_registry(discover())
