import zipfile

import numpy as np
import pandas as pd
import pytest

from htnet_lib import data, release
from htnet_lib._io import HTNetInputError


def test_table1_counts(samples):
    """Table 1 of the paper: subjects and per-class counts per dataset."""
    t = data.class_counts(samples)
    assert t.loc["CASME II"].tolist() == [24, 88, 32, 25, 145]
    assert t.loc["SAMM"].tolist() == [28, 92, 26, 15, 133]
    assert t.loc["SMIC-HS"].tolist() == [16, 70, 51, 43, 164]
    assert t.loc["all"].tolist() == [68, 250, 109, 83, 442]


def test_samples_table(samples):
    assert list(samples.columns) == ["dataset", "subject", "sample", "label", "emotion", "flow_path", "face_path"]
    assert samples["label"].dtype == np.int64
    # SAMM subjects keep their leading zeros (read as text, not numbers)
    assert "006" in set(samples.loc[samples["dataset"] == "samm", "subject"])
    row = samples[(samples["subject"] == "sub01") & (samples["sample"] == "EP02_01f")].iloc[0]
    assert row["label"] == 1 and row["emotion"] == "positive"
    assert row["flow_path"].endswith("STSNet_whole_norm_u_v_os/sub01_EP02_01f .png")


def test_flow_maps_and_channel_order(samples, flow_maps):
    assert flow_maps.shape == (442, 28, 28, 3) and flow_maps.dtype == np.uint8
    sym = data.flow_channel_symmetry(flow_maps)
    assert sym[2] < -0.15  # horizontal flow u: anti-symmetric under a left-right mirror
    assert sym[1] > 0.5  # vertical flow v: symmetric
    # strain (channel 0) is sparse: its median value is far below the flow channels' zero level
    med = np.median(flow_maps.reshape(-1, 3), axis=0)
    assert med[0] < 30 < med[2] < med[1]


def test_verify_release_and_fingerprint(data_dir, release_copy):
    assert data.verify_release(data_dir) == {"flow_maps": 442, "faces": 442, "files": 885}
    assert len(data.fingerprint(data_dir)) == 16
    # a copy has the release's fingerprint; a file edited since (same size, same second) gets another at once
    assert data.fingerprint(release_copy) == data.fingerprint(data_dir)
    csv = release_copy / release.CSV_NAME
    text = csv.read_text()
    csv.write_text(text.replace("EP02_01f", "EP02_01g", 1))
    assert len(csv.read_text()) == len(text) and data.fingerprint(release_copy) != data.fingerprint(data_dir)


def test_missing_data_dir_message(tmp_path, monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    with pytest.raises(HTNetInputError) as e:
        data.resolve_data_dir(tmp_path / "nowhere")
    assert "HTNET_DATA_DIR" in str(e.value) and "fetch" in str(e.value)


def _edit_csv(root, fn):
    p = root / release.CSV_NAME
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    fn(df).to_csv(p, index=False)


@pytest.mark.parametrize("edit, field", [
    (lambda df: df.drop(columns=["label"]), "label"),
    (lambda df: df.assign(label=df["label"].where(df.index != 3, "7")), "label"),
    (lambda df: df.assign(dataset=df["dataset"].where(df.index != 0, "mmew")), "dataset"),
    (lambda df: pd.concat([df, df.iloc[[5]]]), "filename_o"),
])
def test_bad_csv(release_copy, edit, field):
    _edit_csv(release_copy, edit)
    with pytest.raises(HTNetInputError) as e:
        data.load_samples(release_copy)
    assert e.value.field == field and release.CSV_NAME in str(e.value)


def test_missing_and_corrupt_images(release_copy):
    flow = release_copy / release.FLOW_DIR / "sub01_EP02_01f .png"
    flow.unlink()
    with pytest.raises(HTNetInputError) as e:
        data.load_samples(release_copy)
    assert e.value.field == "flow_path" and "sub01_EP02_01f .png" in str(e.value)
    flow.write_bytes(b"not a png")
    s = data.load_samples(release_copy)
    with pytest.raises(HTNetInputError, match="unreadable"):
        data.load_flow_maps(s)
    import cv2
    cv2.imwrite(str(flow), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(HTNetInputError, match=r"shape \(32, 32, 3\)"):
        data.load_flow_maps(s)


def test_flow_maps_are_read_again_when_their_file_is_replaced(release_copy, flow_maps):
    """`load_flow_maps` keeps each checked map for the process (every run of a sweep reads them): a caller's edits
    never reach the kept maps, and a file replaced since is read and checked again, not served from memory."""
    import cv2

    s = data.load_samples(release_copy)
    first = data.load_flow_maps(s)
    first[:] = 0
    np.testing.assert_array_equal(data.load_flow_maps(s), flow_maps)
    flow = release_copy / release.FLOW_DIR / s["flow_path"].iloc[0].rsplit("/", 1)[1]
    flow.unlink()  # a symlink into the shared release: replace it, never write through it
    cv2.imwrite(str(flow), flow_maps[1])
    again = data.load_flow_maps(s)
    np.testing.assert_array_equal(again[0], flow_maps[1])
    np.testing.assert_array_equal(again[1:], flow_maps[1:])
    flow.write_bytes(b"not a png")
    with pytest.raises(HTNetInputError, match="unreadable"):
        data.load_flow_maps(s)


def test_grayscale_flow_map_is_rejected(release_copy, flow_maps):
    """OpenCV's IMREAD_COLOR would expand a one-channel PNG to three equal channels; the loader refuses it."""
    import cv2

    flow = release_copy / release.FLOW_DIR / "sub01_EP02_01f .png"
    flow.unlink()  # a symlink into the shared release: replace it, never write through it
    cv2.imwrite(str(flow), flow_maps[0][..., 0])
    assert cv2.imread(str(flow), cv2.IMREAD_COLOR).shape == (28, 28, 3)  # what the old reading accepted
    s = data.load_samples(release_copy)
    with pytest.raises(HTNetInputError, match=r"1 channel\(s\), expected 3") as e:
        data.load_flow_maps(s)
    assert e.value.field == "flow_path" and "sub01_EP02_01f .png" in str(e.value)


def test_fetch_from_archive_verifies(data_dir, tmp_path):
    """`fetch` keeps the release files from an upstream-shaped zip, checks every checksum, and writes atomically."""
    archive = tmp_path / "HTNet-main.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for rel in data._release_files(data_dir):
            zf.write(data_dir / rel, f"HTNet-{data.UPSTREAM_COMMIT}/{rel}")
        zf.writestr(f"HTNet-{data.UPSTREAM_COMMIT}/Model.py", "# not kept")
    dest = data.fetch(tmp_path / "release", url=archive.as_uri())
    assert data.verify_release(dest)["files"] == 885
    assert not (dest / "Model.py").exists()
    # a corrupted archive leaves nothing behind
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(bad, "w") as zf:
        for n in src.namelist():
            payload = src.read(n)
            zf.writestr(n, payload + b"x" if n.endswith(" .png") and "sub01_EP02_01f" in n else payload)
    with pytest.raises(HTNetInputError, match="checksum"):
        data.fetch(tmp_path / "release2", url=bad.as_uri())
    assert not (tmp_path / "release2").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".release2")] == []


def test_fetch_offline_message(tmp_path):
    with pytest.raises(HTNetInputError) as e:
        data.fetch(tmp_path / "r", url="http://127.0.0.1:9/none.zip", timeout=2)
    assert "download failed" in str(e.value) and "HTNET_DATA_DIR" in str(e.value)
