"""The registry: names, duplicate refusal, lookups, globbing and spec parsing."""

from typing import Literal

import pytest

import rnnbench
from rnnbench.registry import Registry, RegistryError

BUILTIN = [
    "cornn",
    "eurnn",
    "eurnn-c16",
    "eurnn-c4",
    "eurnn-c8",
    "eurnn-fft",
    "eurnn-full",
    "exprnn",
    "gru",
    "indrnn",
    "lmu",
    "lru",
    "lstm",
    "mingru",
    "minlstm",
    "rnn",
    "scornn",
]


def test_builtin_cells_are_registered_and_globbable():
    assert rnnbench.list_cells() == BUILTIN
    assert rnnbench.list_cells("eurnn*") == [n for n in BUILTIN if n.startswith("eurnn")]
    assert rnnbench.list_cells("eurnn-c?") == ["eurnn-c4", "eurnn-c8"]
    assert rnnbench.list_cells("nothing*") == []


def test_registering_a_name_twice_names_both_places():
    registry = Registry("thing")

    @registry.register("a")
    def first(input_size, hidden_size):
        """First."""

    with pytest.raises(RegistryError) as error:

        @registry.register("a")
        def second(input_size, hidden_size):
            """Second."""

    message = str(error.value)
    assert "'a' is registered twice" in message
    assert "test_registry.py" in message and ".first)" in message and ".second)" in message
    assert message.count("test_registry.py:") == 2


def test_a_user_cell_cannot_take_a_builtin_name(scratch_cells):
    with pytest.raises(
        RegistryError, match=r"'lstm' is registered twice: first at .*classic\.py:\d+"
    ):

        @rnnbench.register_cell("lstm")
        def my_lstm(input_size, hidden_size): ...


def test_a_user_cell_is_built_through_the_same_path(scratch_cells):
    import torch

    @rnnbench.register_cell("my-gru")
    def my_gru(input_size, hidden_size, layers: int = 1, dropout: float = 0.0):
        """Stacked GRU."""
        module = torch.nn.GRU(input_size, hidden_size, layers, batch_first=True, dropout=dropout)
        module.output_size = hidden_size
        return module

    assert "my-gru" in rnnbench.list_cells("my-*")
    assert rnnbench.build_cell("my-gru:layers=2", 3, 5).num_layers == 2


@pytest.mark.parametrize("name", ["Bad", "under_score", "-lead", ""])
def test_names_must_be_lowercase_with_hyphens(name):
    with pytest.raises(RegistryError, match="lowercase letters, digits and hyphens"):
        Registry("thing").register(name)(lambda input_size, hidden_size: None)


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda input_size, hidden_size, depth: None, "'depth' needs a default"),
        (lambda input_size, hidden_size, depth=None: None, "'depth' needs a default of type bool"),
        (lambda input_size, hidden_size, **kw: None, "would hide options"),
        (lambda input_size: None, "takes (input_size, hidden_size, **options)"),
    ],
)
def test_factories_must_declare_their_options(factory, message):
    with pytest.raises(RegistryError) as error:
        Registry("thing").register("x")(factory)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "name, suggestion", [("lstn", "lstm"), ("LSTM", "lstm"), ("eurn", "eurnn")]
)
def test_unknown_name_lists_known_names_and_the_closest(name, suggestion):
    with pytest.raises(RegistryError) as error:
        rnnbench.build_cell(name, 1, 8)
    assert str(error.value) == (
        f"unknown cell {name!r} (did you mean {suggestion!r}?); known: {', '.join(BUILTIN)}"
    )


def test_unknown_name_with_nothing_close():
    with pytest.raises(RegistryError, match="^unknown cell 'transformer'; known: cornn, eurnn, "):
        rnnbench.parse_cell_spec("transformer")


@pytest.fixture
def things():
    registry = Registry("thing")

    @registry.register("t")
    def t(
        input_size,
        hidden_size,
        depth: int = 2,
        rate: float = 0.5,
        flag: bool = False,
        mode: Literal["a", "b"] = "a",
        tag: str = "x",
    ):
        return dict(depth=depth, rate=rate, flag=flag, mode=mode, tag=tag)

    return registry


def test_spec_values_take_the_type_of_the_default(things):
    spec = things.parse("t:depth=4:rate=1e-3:flag=yes:mode=b:tag=hello")
    assert dict(spec.options) == dict(depth=4, rate=1e-3, flag=True, mode="b", tag="hello")
    assert type(spec.options["depth"]) is int and type(spec.options["rate"]) is float
    assert things.build("t:flag=false", 1, 2)["flag"] is False
    assert things.build(spec, 1, 2)["tag"] == "hello"


def test_canonical_form_sorts_options_and_drops_defaults(things):
    assert str(things.parse("t")) == "t"
    assert str(things.parse("t:depth=2:rate=0.5")) == "t"
    spec = things.parse(" t:tag=y:flag=1:depth=3 ")
    assert str(spec) == "t:depth=3:flag=true:tag=y"
    assert (
        spec == things.parse("t:depth=3:tag=y:flag=true")
        and len({spec, things.parse(str(spec))}) == 1
    )
    assert dict(spec.options)["rate"] == 0.5  # resolved options keep every default
    assert str(rnnbench.parse_cell_spec("eurnn:impl=dense:capacity=2")) == "eurnn:impl=dense"


@pytest.mark.parametrize(
    "text, message",
    [
        ("t:depth", "'depth' is not KEY=VALUE; options of t: depth: int = 2; rate: float = 0.5"),
        ("t:depth=", "'depth=' is not KEY=VALUE"),
        ("t:=3", "'=3' is not KEY=VALUE"),
        (
            "t:nope=1",
            "unknown option 'nope'; options of t: depth: int = 2; rate: float = 0.5; "
            "flag: bool = false; mode: a|b = a; tag: str = x",
        ),
        ("t:depth=x", "option depth='x' is not a valid int"),
        ("t:depth=2.5", "option depth='2.5' is not a valid int"),
        ("t:rate=fast", "option rate='fast' is not a valid float"),
        ("t:flag=maybe", "option flag='maybe' is not a valid bool"),
        ("t:mode=c", "option mode='c' is not one of a, b"),
        ("t:depth=1:depth=2", "option 'depth' is given twice"),
        (":depth=1", "empty thing name"),
    ],
)
def test_bad_specs_name_the_valid_keys_and_types(things, text, message):
    with pytest.raises(RegistryError) as error:
        things.parse(text)
    assert message in str(error.value)
    assert isinstance(error.value, ValueError)


def test_builtin_spec_errors():
    with pytest.raises(
        RegistryError, match="unknown option 'nope'; options of eurnn: capacity: int = 2"
    ):
        rnnbench.parse_cell_spec("eurnn:nope=1")
    with pytest.raises(RegistryError, match="capacity='x' is not a valid int"):
        rnnbench.parse_cell_spec("eurnn:capacity=x")
