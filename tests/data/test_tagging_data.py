"""Tagged collections: CSV tags, MagnaTagATune and OpenMIC-2018 layouts, scan-cache tuples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtbc.cli import main
from mtbc.data.collection import Collection, from_csv, load_collection
from mtbc.data.mtat import song_of, top_tags
from mtbc.data.openmic import agreement_summary, carve_valid, official_vggish, vggish_agreement
from mtbc.data.tags import tag_matrix
from tests.tagging_layouts import write_mtat, write_openmic


@pytest.fixture(scope="module")
def mtat(tmp_path_factory):
    return write_mtat(tmp_path_factory.mktemp("mtat") / "MTAT")


@pytest.fixture(scope="module")
def openmic(tmp_path_factory):
    return write_openmic(tmp_path_factory.mktemp("openmic") / "openmic-2018")


def test_csv_tags_complete_negatives_and_keep_explicit_ones(tmp_path, tone):
    for k in range(3):
        tone(tmp_path / f"s{k}.wav", seconds=0.3, freq=300 + 50 * k)
    (tmp_path / "plain.csv").write_text("path,tags\ns0.wav,piano;violin\ns1.wav,piano\ns2.wav,\n")
    t = from_csv(tmp_path / "plain.csv").set_index("track_id")
    assert t.loc["s0", "tags"] == ("piano", "violin") and t.loc["s0", "tags_negative"] == ()
    assert t.loc["s1", "tags_negative"] == ("violin",)  # not listed: absent
    assert t.loc["s2", "tags"] == () and t.loc["s2", "tags_negative"] == ()  # not annotated
    (tmp_path / "masked.csv").write_text(
        "path,label,tags,tags_negative\ns0.wav,a,piano,\ns1.wav,b,,piano;flute\n")
    t = from_csv(tmp_path / "masked.csv")
    Y, mask, names = tag_matrix(t)
    assert names == ["flute", "piano"]
    assert mask.tolist() == [[False, True], [True, True]]
    assert Y[0, 1] == 1 and Y[1].tolist() == [0, 0]


def test_scan_cache_round_trips_tag_tuples(tmp_path, tone):
    for k in range(2):
        tone(tmp_path / f"s{k}.wav", seconds=0.3, freq=300 + 50 * k)
    (tmp_path / "m.csv").write_text("path,tags\ns0.wav,piano;violin\ns1.wav,flute\n")
    first = load_collection(tmp_path / "m.csv", scan_cache=tmp_path / "c", progress=False)
    again = load_collection(tmp_path / "m.csv", scan_cache=tmp_path / "c", progress=False)
    assert list(again.tracks["tags"]) == [("piano", "violin"), ("flute",)]
    assert list(again.tracks["tags_negative"]) == list(first.tracks["tags_negative"])
    assert all(isinstance(v, tuple) for v in again.tracks["tags_negative"])
    assert Collection.from_json(first.to_json()).tracks["tags"].map(type).eq(tuple).all()


def test_mtat_song_groups_folder_split_and_top_tags(mtat):
    assert song_of("f/a-b-07-title-30-59.mp3") == "f/a-b-07-title"
    coll = load_collection(mtat, progress=False)  # auto-detected
    assert coll.source.startswith("mtat:")
    t = coll.tracks
    assert len(t) == 16 and len(coll.skipped) == 1
    assert "empty" in coll.skipped["reason"].iloc[0]
    assert t.groupby("split").size().to_dict() == {"test": 6, "train": 8, "valid": 2}
    assert set(t.loc[t["split"] == "valid", "path"].str.split("/").str[-2]) == {"c"}
    assert t["group"].nunique() == 8  # two segments per song
    for tags, neg in zip(t["tags"], t["tags_negative"], strict=True):
        assert isinstance(tags, tuple) and isinstance(neg, tuple)
        assert "guitar" in tags and not set(tags) & set(neg)
        assert len(tags) + len(neg) == 8  # top 50 of 8 tags: all; nothing masked
    assert "rare" not in top_tags(pd.read_csv(mtat / "annotations_final.csv", sep="\t"),
                                  top_k=7)
    assert load_collection(f"mtat:{mtat}", progress=False).tracks["track_id"].equals(
        t["track_id"])


def test_openmic_masks_split_and_groups(openmic):
    root, arrays = openmic
    coll = load_collection(f"openmic:{root}", progress=False)
    t = coll.tracks.set_index("track_id")
    assert len(t) == 24 and len(coll.skipped) == 0
    assert t["split"].value_counts().to_dict() == {"train": 16, "test": 6, "valid": 2}
    valid_groups = set(t.loc[t["split"] == "valid", "group"])
    assert not valid_groups & set(t.loc[t["split"] == "train", "group"])
    Y, mask, names = tag_matrix(coll.tracks, tags=[
        n for n, _ in sorted(__import__("json").loads(
            (root / "class-map.json").read_text()).items(), key=lambda kv: kv[1])])
    order = [list(arrays["sample_key"]).index(k) for k in coll.tracks["track_id"]]
    assert np.array_equal(mask, arrays["Y_mask"][order])
    expected = (arrays["Y_true"][order] >= 0.5).astype(float)
    assert np.array_equal(Y[mask], expected[mask])
    assert carve_valid(list(t.index[t["split"] != "test"]), seed=0) == set(
        t.index[t["split"] == "valid"])
    assert load_collection(root, progress=False).source.startswith("openmic:")


def test_official_vggish_agreement_table(openmic):
    root, arrays = openmic
    official = official_vggish(root)
    key = str(arrays["sample_key"][0])
    assert official[key].shape == (10, 128) and official[key].dtype == np.uint8
    same = vggish_agreement({key: official[key].astype(np.float32)}, official)
    assert same.loc[0, "equal_bytes"] == 1.0 and same.loc[0, "mean_abs_diff"] == 0.0
    assert same.loc[0, "cosine"] == pytest.approx(1.0)
    off = official[key].astype(np.float32)[:7] + 1  # fewer frames, shifted by one step
    row = agreement_summary(vggish_agreement({key: off}, official)).iloc[0]
    assert row["frames"] == 7 and row["mean_abs_diff"] == pytest.approx(1.0, abs=0.01)


def test_scan_cli_reports_tags_split_and_masked_counts(mtat, openmic, capsys):
    assert main(["scan", str(mtat)]) == 0
    out = capsys.readouterr().out
    assert "16 tracks, 1 skipped" in out and "tags: 8 tags" in out and "0 masked" in out
    assert "valid" in out and "empty" in out
    assert main(["scan", "--kind", "openmic", str(openmic[0])]) == 0
    out = capsys.readouterr().out
    assert "24 tracks" in out and "tags: 20 tags" in out and "masked" in out
