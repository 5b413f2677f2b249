import numpy as np
import pytest

from htnet_lib import audit, figures
from htnet_lib._io import HTNetInputError


def test_random_guesses_under_paper_selection(samples):
    """The paper's pick on uninformative guesses: chance at a fixed epoch, far above chance when chosen per subject."""
    scores, curve = audit.random_guess_oracle(samples, epochs=200, repeats=2, seed=3, curve_at=(1, 10, 200))
    s = audit.summarize(scores).set_index(["protocol", "scope"])
    assert 0.25 < s.loc[("fixed epoch", "Full"), "UF1_mean"] < 0.42
    assert s.loc[("paper (oracle)", "Full"), "UF1_mean"] > 0.7
    c = curve[(curve["scope"] == "Full") & (curve["protocol"] == "paper (oracle)")].groupby("epoch")["UF1"].mean()
    assert c.loc[1] < c.loc[10] < c.loc[200]  # more epochs to choose from, higher score
    # guesses follow the other subjects' priors: about 57% negative overall
    rec = audit.guess_records(samples, epochs=50, seed=0)
    allp = np.concatenate([r["test_pred"].ravel() for r in rec.values()])
    assert abs((allp == 0).mean() - 250 / 442) < 0.02


def test_audit_table_and_description(samples):
    scores, _ = audit.random_guess_oracle(samples, epochs=20, repeats=2, curve_at=(20,))
    t = figures.audit_table(scores, real=[])
    assert set(t["predictions"]) == {"random guesses (class priors)"}
    text = audit.describe(t, "Full")
    assert text.startswith("Full: random guesses") and "+0." in text


def test_load_audit_rejects_bad_files(tmp_path):
    (tmp_path / "loso.yaml").write_text("dim: 16\n")
    bad = tmp_path / "audit.yaml"
    bad.write_text("base: loso.yaml\nseeds: [0, x]\n")
    with pytest.raises(HTNetInputError) as e:
        audit.load_audit(bad)
    assert e.value.field == "seeds" and str(bad) in str(e.value)
    bad.write_text("base: loso.yaml\nrepeats: 3\n")
    with pytest.raises(HTNetInputError, match="repeats"):
        audit.load_audit(bad)
    bad.write_text("base: loso.yaml\nseeds: [1, 2]\nguess_epochs: 10\n")
    plan = audit.load_audit(bad)
    assert plan.seeds == (1, 2) and plan.base.model.dim == 16 and plan.guess_epochs == 10
