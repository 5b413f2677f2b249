"""docs/extending.md runs: each walk-through's code blocks are executed in order, in a temporary folder, on the
authors' release; then the test checks that the one record reached everything downstream it claims to reach."""
import importlib
import re
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
FILE = re.compile(r"#\s*file:\s*(\S+)")


def walkthroughs() -> dict[str, list[tuple[str, str]]]:
    """{section title: [(language, code), ...]} for every `### ` section of the doc."""
    out: dict[str, list[tuple[str, str]]] = {}
    for part in re.split(r"^### ", DOC.read_text(), flags=re.M)[1:]:
        title, _, body = part.partition("\n")
        out[title.strip()] = [(m.group(1), m.group(2)) for m in FENCE.finditer(body)]
    return out


@pytest.fixture()
def registries():
    """Every registry as it was, restored after the walk-through (a test's registrations do not leak)."""
    from htnet_lib import release
    from htnet_lib.loso import protocols
    from htnet_lib.models import registry
    from htnet_lib.raw import adapters

    saved = (dict(registry.NETWORKS), dict(protocols.PROTOCOLS), release.DATASETS, dict(adapters.ADAPTERS))
    yield
    registry.NETWORKS.clear()
    registry.NETWORKS.update(saved[0])
    protocols.PROTOCOLS.clear()
    protocols.PROTOCOLS.update(saved[1])
    for d in release.DATASETS:
        if d not in saved[2]:
            release.unregister(d.key)
    adapters.ADAPTERS.clear()
    adapters.ADAPTERS.update(saved[3])
    sys.modules.pop("tinycnn", None)


def run_section(title: str, folder: Path) -> dict:
    """Execute one walk-through in `folder`: `# file:` blocks are written there (Python ones imported), the other
    Python blocks run in one namespace, which is returned."""
    namespace: dict = {"__name__": f"extending_{title.split()[-1]}"}
    for lang, code in walkthroughs()[title]:
        first = code.splitlines()[0] if code.strip() else ""
        target = FILE.match(first)
        if target:
            path = folder / target.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code)
            if lang == "python":
                importlib.import_module(path.stem)
        elif lang == "python":
            exec(compile(code, f"{DOC.name}: {title}", "exec"), namespace)
    return namespace


@pytest.fixture()
def folder(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("HTNET_ROOT", raising=False)
    monkeypatch.setenv("HTNET_DATA_DIR", str(data_dir))
    return tmp_path


def test_the_doc_has_the_four_walkthroughs():
    assert list(walkthroughs()) == ["A network", "A protocol", "A dataset", "A sweep"]
    assert all(walkthroughs().values())


def test_a_network_is_one_file_and_one_registration(folder, registries):
    from htnet_lib import config, models
    from htnet_lib._io import HTNetInputError
    from htnet_lib.loso import engines

    ns = run_section("A network", folder)
    run, params = ns["run"], ns["params"]
    assert run.finished and run.dir.parent == folder / "runs" and set(run.metrics()["scope"]) >= {"Full"}
    assert run.params == params and run.meta["params"]["width"] == 4  # its keys are params keys, stored with the run
    assert type(params.model).__name__ == "TinyCNNConfig" and models.geometry(params.model).shape == (2, 28, 28)
    assert engines.batchable(params.model)
    with pytest.raises(HTNetInputError) as e:  # the network's own config validates its keys
        config.params_from_dict({"arch": "tinycnn", "width": 0, "regions": "whole"}, source="p.yaml")
    assert e.value.field == "width" and "p.yaml" in str(e.value)
    with pytest.raises(HTNetInputError) as e:  # it reads the whole map only
        from htnet_lib import loso
        loso.run_loso(params.replace(regions="official"))
    assert e.value.field == "regions"
    path = folder / "w.safetensors"  # weights files of any registered network
    models.save_weights(engines.init_model(params.model, 0), path)
    assert models.load_weights(path).cfg == params.model
    models.registry.check_contract(params.model)  # the contract the doc states


def test_the_network_example_works_inside_the_package_as_the_doc_places_it(tmp_path):
    """The doc's network file as `htnet_lib/models/tinycnn.py` with its import line at the end of `models/__init__.py`
    (in a copy of the package): it imports, registers, meets the contract and is listed by `models`."""
    import shutil
    import subprocess

    package = tmp_path / "htnet_lib"
    shutil.copytree(Path(__file__).resolve().parent.parent / "htnet_lib", package,
                    ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    code = next(c for lang, c in walkthroughs()["A network"] if FILE.match(c.splitlines()[0]))
    (package / "models" / "tinycnn.py").write_text(code)
    init = package / "models" / "__init__.py"
    init.write_text(init.read_text() + "from . import tinycnn  # noqa: F401\n")
    # one fresh interpreter: the import, the contract, then `python -m htnet_lib models`'s own main
    check = ("from htnet_lib import models; from htnet_lib.models import registry; "
             "registry.check_contract(registry.network('tinycnn').config()); print(sorted(models.NETWORKS)); "
             "from htnet_lib.__main__ import main; raise SystemExit(main(['models']))")
    done = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    listed, models_page = done.stdout.split("\n", 1)
    assert "'tinycnn'" in listed
    assert "tinycnn" in models_page and "width" in models_page


def test_a_protocol_is_one_registration(folder, registries):
    from htnet_lib import config
    from htnet_lib._io import HTNetInputError
    from htnet_lib.loso import protocols

    ns = run_section("A protocol", folder)
    run, t2 = ns["run"], ns["t2"]
    assert "vote@2" in run.predictions().columns and "vote@2" in set(run.metrics()["protocol"])
    assert set(run.curve().query("protocol == 'vote@2'")["epoch"]) == {2, 3}  # the epoch curve, from its 2nd epoch
    assert "ours, majority of the last 2 epochs" in set(t2["source"])
    with pytest.raises(HTNetInputError, match="registered already"):  # no silent replacement of a built-in
        protocols.register(protocols.Protocol("mean", "x", False, "x", lambda v, a: (None, 0.0)))
    protocols.register(protocols.Protocol("labels", "labels", False, "returns labels", lambda v, a: (
        v.test_logits[-1].argmax(-1), 1.0)))
    with pytest.raises(HTNetInputError, match="class probabilities"):  # the contract is checked
        run.protocol_predictions(["labels"])
    with pytest.raises(HTNetInputError) as e:  # an unknown protocol in params stops the run before it starts
        from htnet_lib import loso
        loso.run_loso(ns["params"].replace(protocols=["nope@2"]))
    assert e.value.field == "protocols"
    with pytest.raises(HTNetInputError) as e:
        config.params_from_dict({"protocols": ["not a name"]}, source="p.yaml")
    assert e.value.field == "protocols"
    # a k beyond the evaluated epochs (3 here) is an error, for the doc's protocol and the built-in mean@k alike
    from htnet_lib import loso
    for name in ("vote@5", "mean@4"):
        with pytest.raises(HTNetInputError, match=f"{name}' needs .* evaluated epochs") as e:
            loso.run_loso(ns["params"].replace(protocols=[name]))
        assert e.value.field == "protocols"
        with pytest.raises(HTNetInputError, match="this fold has 3"):
            run.protocol_predictions([name])
    assert run.protocol_predictions(["mean@3"])["mean@3_epoch"].isna().all()  # mixed epochs: no single epoch
    # the run folder recorded vote@2: resuming it where vote is not registered names the folder
    protocols.unregister("vote")
    with pytest.raises(HTNetInputError, match="'vote@2', which is not registered") as e:
        protocols.run_names(ns["params"], run.meta["protocols"], where=run.dir)
    assert str(run.dir) in str(e.value)


def test_a_registered_protocol_reaches_the_ablation_tables_and_figures(folder, registries):
    """A protocol a study's params name is scored by every run and gets its rows in notebook 04's summaries and its
    own panel in the sweep's figure."""
    from htnet_lib.figures import ablations
    from htnet_lib.studies import load_study, sweeps

    run_section("A protocol", folder)
    (folder / "loso.yaml").write_text('dim: 16\nheads: 2\nblock_repeats: [1, 1, 1]\nepochs: 2\n'
                                      'folds: [s01, sub01, "006"]\nprotocols: [vote@2]\nprogress: false\n')
    (folder / "study.yaml").write_text("base: loso.yaml\nseeds: [0]\nsweeps:\n  heads:\n"
                                       "    - {heads: 1}\n    - {heads: 2}\n")
    results = sweeps.run_sweep(load_study(folder / "study.yaml"), progress=False)
    report = ablations.report(results, "heads", n_boot=20)
    assert "vote@2" in set(report.summary["protocol"])
    assert any(ax.get_title() == "ours, majority of the last 2 epochs" for ax in report.figure.axes)


def test_a_dataset_is_one_entry_and_gets_its_own_rows(folder, registries):
    from htnet_lib.__main__ import build_parser
    from htnet_lib.figures import results

    ns = run_section("A dataset", folder)
    run = ns["run"]
    scopes = list(run.metrics().query("protocol == 'last'")["scope"])
    assert scopes == ["Full", "SMIC-HS", "CASME II", "MMEW"]
    wide = results.wide(results.table2([run], n_boot=20))
    assert "MMEW UF1" in wide.columns
    assert "mmew" in ns["adapters"].databases()
    args = build_parser().parse_args(["preprocess-raw", "--database", "mmew", "--root", ".", "--out", "x"])
    assert args.database == "mmew"  # the command takes it


def test_a_sweep_is_one_study_file(folder, registries):
    ns = run_section("A sweep", folder)
    table = ns["report"].table
    assert "lr" in table.columns and len(table) == 2
    assert set(ns["results"].table["lr"]) == {1.0e-4, 4.0e-4}
