"""The plugin system: every hook spec, registries, clashes, isolation of broken plugins."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vt import hookspecs
from vt.cli import create_app
from vt.errors import RegistryError
from vt.hookspecs import hookimpl
from vt.media.processing import FrameProcessor
from vt.plugins import PluginHost
from vt.registry import (
    CommandSpec,
    DecoderInfo,
    EncoderInfo,
    ModelAdapterInfo,
    ModelRef,
    ModelSpec,
    OutputTarget,
    ProcessorInfo,
)

runner = CliRunner()


def plugin(**hooks: object) -> types.SimpleNamespace:
    return types.SimpleNamespace(**hooks)


def test_every_hook_spec_has_a_test() -> None:
    specs = {n for n in dir(hookspecs) if n.startswith(("register_", "choose_"))}
    tested = {n[len("test_hook_") :] for n in globals() if n.startswith("test_hook_")}
    assert specs == tested


def test_every_hook_spec_is_documented_with_its_signature() -> None:
    import inspect

    guide = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    for name in (n for n in dir(hookspecs) if n.startswith(("register_", "choose_"))):
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"`{name}({params})`" in guide, name


def test_hook_register_commands(host: PluginHost) -> None:
    def hello(name: str = "world") -> None:
        """Say hello."""
        typer.echo(f"hello {name}")

    group = typer.Typer(help="A group of commands.")

    @group.command("ping")
    def ping() -> None:
        typer.echo("pong")

    @hookimpl
    def register_commands(register):
        register(CommandSpec("hello", hello))
        register(CommandSpec("grp", group, help="A group of commands."))

    host.register(plugin(register_commands=register_commands), "greeter")
    app = create_app(host)
    assert runner.invoke(app, ["hello", "--name", "vt"]).output == "hello vt\n"
    assert runner.invoke(app, ["grp", "ping"]).output == "pong\n"
    assert host.commands.entry("hello").plugin == "greeter"


def test_hook_register_decoders(host: PluginHost) -> None:
    @hookimpl
    def register_decoders(register):
        register(
            DecoderInfo(
                "fake",
                open=lambda source, **kw: None,
                sources=("file",),
                available=lambda: "not today",
            )
        )

    host.register(plugin(register_decoders=register_decoders), "fakes")
    info = host.decoders.get("fake")
    assert info.available() == "not today"
    assert {"pyav", "images", "fake"} <= set(host.decoders.names())


def test_hook_register_processors(host: PluginHost) -> None:
    class Double(FrameProcessor):
        name = "double"

    @hookimpl
    def register_processors(register):
        register(ProcessorInfo("double", Double, batch_size=4))

    host.register(plugin(register_processors=register_processors), "maths")
    entry = host.processors.entry("double")
    assert entry.plugin == "maths" and entry.item.batch_size == 4
    assert isinstance(entry.item.factory(), Double)
    assert host.processors.entry("resize").plugin == "vt.builtins.processors"


def test_hook_register_encoders(host: PluginHost) -> None:
    @hookimpl
    def register_encoders(register):
        register(EncoderInfo("gifs", open=lambda *a, **k: None, extensions=("gif",)))

    host.register(plugin(register_encoders=register_encoders), "gifmaker")
    info = host.encoders.get("gifs")
    assert info.accepts(OutputTarget(Path("a.gif")))
    assert not info.accepts(OutputTarget(Path("a.mp4")))


def test_hook_register_model_adapters(host: PluginHost, tmp_path: Path) -> None:
    @hookimpl
    def register_model_adapters(register):
        register(
            ModelAdapterInfo("toy", load=lambda ref, **kw: ("loaded", ref.path), formats=(".toy",))
        )

    host.register(plugin(register_model_adapters=register_model_adapters), "toys")
    adapter = host.model_adapters.get("toy")
    ref = ModelRef(tmp_path / "m.toy")
    assert adapter.accepts(ref) and not adapter.accepts(ModelRef(tmp_path / "m.onnx"))
    assert adapter.load(ref) == ("loaded", ref.path)


def test_hook_register_models(host: PluginHost, tmp_path: Path) -> None:
    weights = tmp_path / "w.toy"
    weights.write_bytes(b"x")

    @hookimpl
    def register_models(register):
        register(
            ModelSpec(
                "toy-x2",
                task="super-resolution",
                locate=lambda: ModelRef(weights, name="toy-x2", source="cache"),
                sources=(str(tmp_path),),
            )
        )
        register(ModelSpec("toy-missing", task="super-resolution", locate=lambda: None))

    host.register(plugin(register_models=register_models), "toys")
    assert host.models.get("toy-x2").locate().path == weights
    assert host.models.get("toy-missing").locate() is None
    result = runner.invoke(create_app(host), ["models", "--json"])
    assert result.exit_code == 0, result.output
    assert '"toy-missing"' in result.output and '"available": false' in result.output


def test_hook_choose_decoder(host: PluginHost) -> None:
    calls = []

    @hookimpl
    def choose_decoder(source, candidates):
        calls.append([c.name for c in candidates])
        return next(c for c in candidates if c.name == "pyav")

    default = host.call_first(
        "choose_decoder",
        source=None,
        candidates=[host.decoders.get("images"), host.decoders.get("pyav")],
    )
    assert default.name == "images"  # the core's trylast default: first available
    host.register(plugin(choose_decoder=choose_decoder), "picky")
    chosen = host.call_first(
        "choose_decoder",
        source=None,
        candidates=[host.decoders.get("images"), host.decoders.get("pyav")],
    )
    assert chosen.name == "pyav" and calls == [["images", "pyav"]]


def test_hook_choose_encoder(host: PluginHost) -> None:
    target = OutputTarget(Path("x.mp4"))
    candidates = host.encoders.items()
    assert host.call_first("choose_encoder", target=target, candidates=candidates).name == "pyav"

    @hookimpl
    def choose_encoder(target, candidates):
        return EncoderInfo("mine", open=lambda *a, **k: None)

    host.register(plugin(choose_encoder=choose_encoder), "mine")
    assert host.call_first("choose_encoder", target=target, candidates=candidates).name == "mine"


def test_hook_choose_model_adapter(host: PluginHost, tmp_path: Path) -> None:
    toy = ModelAdapterInfo("toy", load=lambda ref: ref, formats=(".pth",))
    ref = ModelRef(tmp_path / "model.pth")
    # no plugin claims it: the core has no default adapter for .pth
    assert host.call_first("choose_model_adapter", model=ref, candidates=[]) is None

    @hookimpl
    def choose_model_adapter(model, candidates):
        return toy if model.format == ".pth" else None

    host.register(plugin(choose_model_adapter=choose_model_adapter), "toys")
    assert host.call_first("choose_model_adapter", model=ref, candidates=[toy]) is toy
    assert (
        host.call_first(
            "choose_model_adapter", model=ModelRef(tmp_path / "m.onnx"), candidates=[toy]
        )
        is None
    )


def test_core_default_model_adapter_choice_is_first_accepting(
    host: PluginHost, tmp_path: Path
) -> None:
    onnx = ModelAdapterInfo("onnx", load=lambda ref: ref, formats=(".onnx",))
    torch_ = ModelAdapterInfo("torch", load=lambda ref: ref, formats=(".pth",))
    ref = ModelRef(tmp_path / "model.pth")
    assert host.call_first("choose_model_adapter", model=ref, candidates=[onnx, torch_]) is torch_


def test_name_clash_names_both_plugins_and_qualified_names_work(host: PluginHost) -> None:
    class P(FrameProcessor):
        pass

    def make(tag):
        @hookimpl
        def register_processors(register):
            register(ProcessorInfo("sharpen", P, description=tag))

        return plugin(register_processors=register_processors)

    host.register(make("a"), "alpha")
    host.register(make("b"), "beta")
    with pytest.raises(RegistryError, match="'alpha' and 'beta'.*alpha:sharpen or beta:sharpen"):
        host.processors.get("sharpen")
    assert host.processors.get("alpha:sharpen").description == "a"
    assert host.processors.get("beta:sharpen").description == "b"
    assert host.processors.clashes() == {"sharpen": ["alpha", "beta"]}


def test_command_clash_is_an_error_naming_both(host: PluginHost) -> None:
    def make(text):
        def cmd() -> None:
            typer.echo(text)

        @hookimpl
        def register_commands(register):
            register(CommandSpec("go", cmd))

        return plugin(register_commands=register_commands)

    host.register(make("from a"), "a")
    host.register(make("from b"), "b")
    app = create_app(host)
    result = runner.invoke(app, ["go"])
    assert result.exit_code == 2
    assert "'a' and 'b'" in result.output and "vt a:go or vt b:go" in result.output
    assert runner.invoke(app, ["a:go"]).output == "from a\n"
    assert runner.invoke(app, ["b:go"]).output == "from b\n"


def test_misspelt_hook_is_reported_and_plugin_not_registered(host: PluginHost, capsys) -> None:
    @hookimpl
    def register_procesors(register):  # misspelt on purpose
        pass

    record = host.register(plugin(register_procesors=register_procesors), "typo")
    assert record is not None and record.errors and "register_procesors" in record.errors[0]
    assert not host.pm.has_plugin("typo")
    assert "plugin 'typo' failed" in capsys.readouterr().err


def test_plugin_failing_in_a_hook_does_not_break_others(host: PluginHost, capsys) -> None:
    @hookimpl
    def register_processors(register):
        raise RuntimeError("boom")

    host.register(plugin(register_processors=register_processors), "explodes")
    assert "resize" in host.processors  # built-ins still registered
    assert any("boom" in e for e in host.records["explodes"].errors)
    assert "boom" in capsys.readouterr().err


def test_invalid_registration_is_reported(host: PluginHost) -> None:
    @hookimpl
    def register_processors(register):
        register("not a ProcessorInfo")

    host.register(plugin(register_processors=register_processors), "wrongtype")
    assert "resize" in host.processors
    assert any("takes a ProcessorInfo" in e for e in host.records["wrongtype"].errors)


def test_vt_load_plugins_empty_means_none(monkeypatch) -> None:
    monkeypatch.setenv("VT_LOAD_PLUGINS", "")
    h = PluginHost().load()
    assert all(r.builtin for r in h.records.values())


def test_builtins_are_ordinary_plugins(host: PluginHost) -> None:
    builtins = {n for n, r in host.records.items() if r.builtin}
    assert builtins == {
        "vt.builtins.decoders",
        "vt.builtins.encoders",
        "vt.builtins.processors",
        "vt.builtins.models",
        "vt.builtins.commands",
    }
    assert host.commands.entry("transcode").plugin == "vt.builtins.commands"
