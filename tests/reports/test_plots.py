"""mtbc.reports.plots: every figure has a title, labelled axes with units and labelled colour bars."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mtbc.reports import plots
from mtbc.stats import descriptive as stats  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    labels = list("aaabbbccc")
    X = rng.standard_normal((9, 2, 6))
    tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(9)], "label": labels,
                           "duration": rng.uniform(5, 60, 9)})
    segs = rng.standard_normal((18, 2, 6))
    return X, tracks, segs, np.repeat(np.arange(9), 2)


def colorbar_label(ax) -> str:
    cbar = ax.collections[0].colorbar
    assert cbar is not None, "expected a colour bar"
    return cbar.ax.get_ylabel()


def assert_labelled(ax, xlabel_has: str = "", ylabel_has: str = ""):
    assert ax.get_title().strip(), "figure needs a title"
    assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), "axes need labels"
    assert xlabel_has in ax.get_xlabel(), f"x label {ax.get_xlabel()!r} lacks {xlabel_has!r}"
    assert ylabel_has in ax.get_ylabel(), f"y label {ax.get_ylabel()!r} lacks {ylabel_has!r}"


def test_similarity_heatmap_labels_colour_bar(data):
    X, tracks, *_ = data
    sim = stats.cosine_similarity_matrix(X, tracks, layer=0)
    ax = plots.plot_similarity(sim, labels=tracks["label"])
    assert_labelled(ax, "track", "track")
    assert colorbar_label(ax) == "cosine similarity"


@pytest.mark.parametrize("method, unit", [("pca", "PC 1 (a.u.)"), ("tsne", "t-SNE 1 (a.u.)")])
def test_projection_scatter_coloured_by_label(data, method, unit):
    X, tracks, *_ = data
    proj = stats.project_2d(X, tracks, method=method, layer=1)
    ax = plots.plot_projection(proj)
    assert_labelled(ax, unit, "(a.u.)")
    assert ax.get_legend().get_title().get_text() == "label"
    assert len(ax.get_legend().get_texts()) == 3


def test_projection_draws_into_given_axes(data):
    X, tracks, *_ = data
    fig, ax = plt.subplots()
    assert plots.plot_projection(stats.project_2d(X, tracks, layer=0), ax=ax) is ax


@pytest.mark.parametrize("layer", [0, None])
def test_track_stats_plot(data, layer):
    _, tracks, segs, idx = data
    ax = plots.plot_track_stats(stats.track_stats(segs, idx, tracks, model="m"), layer=layer)
    assert_labelled(ax, "track" if layer == 0 else "layer", "(a.u.)")


def test_dim_stats_plot_highlights_top_dims(data):
    X, *_ = data
    ax = plots.plot_dim_stats(stats.dim_stats(X, layer=0), top=2)
    assert_labelled(ax, "dimension", "(a.u.)")
    assert len(ax.texts) == 2, "each top-variance dimension is named"


@pytest.mark.parametrize("normalize, cbar", [(True, "% of the true label's tracks"),
                                             (False, "tracks")])
def test_confusion_heatmap(normalize, cbar):
    cm = np.array([[3, 1], [0, 0]])
    ax = plots.plot_confusion(cm, ["a", "b"], normalize=normalize, title="CM")
    assert_labelled(ax, "predicted", "true")
    assert colorbar_label(ax) == cbar
    values = ax.collections[0].get_array().reshape(2, 2)
    if normalize:
        np.testing.assert_allclose(values[0], [75.0, 25.0])  # percent
        assert np.isnan(values[1]).all() or np.ma.is_masked(values[1])  # no true-b tracks
    else:
        np.testing.assert_allclose(values[0], [3, 1])


def test_confusion_rejects_wrong_label_count():
    with pytest.raises(ValueError, match="labels"):
        plots.plot_confusion(np.eye(3), ["a", "b"])


def test_layer_curve_plots_fractions_as_percent():
    df = pd.DataFrame({"layer": range(5), "accuracy": [0.3, 0.5, 0.7, 0.6, 0.4],
                       "ci_low": [0.2, 0.4, 0.6, 0.5, 0.3], "ci_high": [0.4, 0.6, 0.8, 0.7, 0.5]})
    ax = plots.plot_layer_curve(df, chance=0.25, title="Layers")
    assert_labelled(ax, "layer", "accuracy (%)")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [30, 50, 70, 60, 40])
    assert any("chance" in t.get_text() for t in ax.get_legend().get_texts())


def test_model_comparison_plot():
    df = pd.DataFrame({"system": ["MERT", "VGGish"], "accuracy": [75.0, 70.0],
                       "ci_low": [70.0, 64.0], "ci_high": [80.0, 76.0]})
    ax = plots.plot_model_comparison(df, chance=10.0)
    assert_labelled(ax, "accuracy (%)", "system")
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths == [70.0, 75.0], "percent input is not rescaled"


def test_durations_histogram(data):
    _, tracks, *_ = data
    ax = plots.plot_durations(tracks)
    assert_labelled(ax, "duration (s)", "tracks")
    heights = sum(p.get_height() for p in ax.patches)
    assert heights == len(tracks), "stacked histogram counts every track once"


def test_layer_separability_plot_marks_the_best_layer():
    df = pd.DataFrame({"layer": [0, 1, 2, 3], "silhouette": [0.05, 0.30, 0.12, np.nan]})
    ax = plots.plot_layer_separability(df, title="sep")
    assert ax.get_title() == "sep" and ax.get_xlabel() == "layer"
    assert "silhouette" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "best layer (1)" in labels
    plt.close(ax.figure)


def test_matrix_plot_takes_colour_limits_and_labels_its_colour_bar():
    names = ["a", "b", "c"]
    matrix = pd.DataFrame([[np.nan, 0.2, 0.9], [0.2, np.nan, 0.5], [0.9, 0.5, np.nan]],
                          index=names, columns=names)
    ax = plots.plot_matrix(matrix, title="p", colorbar="Holm-adjusted p-value", limits=(0.0, 1.0))
    mesh = ax.collections[0]
    assert mesh.get_clim() == (0.0, 1.0)
    assert mesh.colorbar.ax.get_ylabel() == "Holm-adjusted p-value" and ax.get_title() == "p"
    free = plots.plot_matrix(matrix, title="q", colorbar="x")
    assert free.collections[0].get_clim() == pytest.approx((0.2, 0.9))
