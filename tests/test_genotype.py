"""Genotypes: JSON round trip, DARTS conversion, strict validation, drawing."""

from __future__ import annotations

import json
import shutil

import pytest

from cpnas.errors import CpnasError
from cpnas.genotype import (Genotype, cell_edges, draw_cell, genotype_from_ops, load_genotype,
                            top2_genotype)
from cpnas.ops import PRIMITIVES

GOOD_NORMAL = [["sep_conv_3x3", 0, 2], ["skip_connect", 1, 2], ["dil_conv_5x5", 2, 3],
               ["max_pool_3x3", 0, 4], ["avg_pool_3x3", 3, 5]]
GOOD_REDUCE = [["max_pool_3x3", 0, 2], ["sep_conv_5x5", 1, 2], ["skip_connect", 2, 3]]


def good_dict(**changes):
    d = {"normal": [list(e) for e in GOOD_NORMAL], "normal_concat": [2, 3, 4, 5],
         "reduce": [list(e) for e in GOOD_REDUCE], "reduce_concat": [2, 3]}
    d.update(changes)
    return d


def test_json_round_trip(tmp_path):
    g = Genotype.from_dict(good_dict())
    path = g.save(tmp_path / "sub" / "genotype.json")
    assert load_genotype(path) == g
    on_disk = json.loads(path.read_text())
    assert on_disk == g.to_dict()
    assert on_disk["normal"][0] == ["sep_conv_3x3", 0, 2]  # the public [op, from, to] form
    assert Genotype.from_dict(on_disk) == g


def test_edges_are_sorted_by_target_then_source():
    shuffled = good_dict(normal=GOOD_NORMAL[::-1])
    assert Genotype.from_dict(shuffled) == Genotype.from_dict(good_dict())


def test_darts_form_converts_to_edges(data_dir):
    g = load_genotype(data_dir / "darts_v2.json")
    # DARTS_V2: node 2+k//2 takes pairs 2k and 2k+1
    assert g.normal == (("sep_conv_3x3", 0, 2), ("sep_conv_3x3", 1, 2),
                        ("sep_conv_3x3", 0, 3), ("sep_conv_3x3", 1, 3),
                        ("skip_connect", 0, 4), ("sep_conv_3x3", 1, 4),
                        ("skip_connect", 0, 5), ("dil_conv_3x3", 2, 5))
    assert g.reduce == (("max_pool_3x3", 0, 2), ("max_pool_3x3", 1, 2),
                        ("max_pool_3x3", 1, 3), ("skip_connect", 2, 3),
                        ("max_pool_3x3", 0, 4), ("skip_connect", 2, 4),
                        ("max_pool_3x3", 1, 5), ("skip_connect", 2, 5))
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)
    # and the DARTS form survives a round trip through the public form
    assert Genotype.from_dict(g.to_dict()) == g


def test_none_edges_are_dropped():
    d = good_dict(normal=GOOD_NORMAL + [["none", 1, 3]])
    g = Genotype.from_dict(d)
    assert ("none", 1, 3) not in g.normal and len(g.normal) == len(GOOD_NORMAL)
    assert g == Genotype.from_dict(good_dict())


@pytest.mark.parametrize("edges,message", [
    ([["conv_7x7", 0, 2]], "unknown op 'conv_7x7'"),
    ([[3, 0, 2]], "unknown op 3"),
    ([["sep_conv_3x3", 0, 1]], "goes into input node 1"),
    ([["sep_conv_3x3", 3, 3]], r"needs 0 <= from < to"),
    ([["sep_conv_3x3", 4, 3]], r"needs 0 <= from < to"),
    ([["sep_conv_3x3", -1, 3]], r"needs 0 <= from < to"),
    ([["sep_conv_3x3", 0, 6]], "goes into node 6; intermediate nodes are 2-5"),
    ([["sep_conv_3x3", 0, 2], ["skip_connect", 0, 2]], r"edge \(0, 2\) appears twice"),
    ([["sep_conv_3x3", "0", 2]], "must be integers"),
    ([["sep_conv_3x3", True, 2]], "must be integers"),
    ([["sep_conv_3x3", 0, 2, 1]], "expected \\[op, from, to\\]"),
    ([], "non-empty list of edges"),
    ("sep_conv_3x3", "non-empty list of edges"),
    ([["none", 0, 2], ["none", 1, 2]], "every edge is 'none'"),
    ([["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 0]], "two \\(op, input\\) pairs per node"),
])
def test_malformed_edges_raise_a_named_error(edges, message):
    with pytest.raises(CpnasError, match=message) as info:
        Genotype.from_dict(good_dict(reduce=edges), source="my.json")
    assert str(info.value).startswith("my.json: reduce")  # names the file and the cell


@pytest.mark.parametrize("concat,message", [
    ([2, 6], r"node\(s\) \[6\] are not intermediate nodes"),
    ([1, 2], r"node\(s\) \[1\] are not intermediate nodes"),
    ([], "non-empty list of node indices"),
    ("2345", "non-empty list of node indices"),
    ([2.0, 3], "non-empty list of node indices"),
])
def test_bad_concat(concat, message):
    with pytest.raises(CpnasError, match="normal_concat: .*" + message):
        Genotype.from_dict(good_dict(normal_concat=concat))


def test_missing_and_unknown_keys():
    d = good_dict()
    del d["reduce"]
    with pytest.raises(CpnasError, match="missing key 'reduce'"):
        Genotype.from_dict(d)
    with pytest.raises(CpnasError, match=r"unknown key\(s\) \['nodes'\]"):
        Genotype.from_dict(good_dict(nodes=4))


@pytest.mark.parametrize("obj", [[1, 2], "normal", 3, None])
def test_non_object_json(tmp_path, obj):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(CpnasError, match=f"{path}: expected a JSON object"):
        load_genotype(path)


def test_bad_json_file_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"normal": [["sep_conv_3x3", 0, 2],')
    with pytest.raises(CpnasError, match=r"broken\.json: not valid JSON"):
        load_genotype(path)
    with pytest.raises(CpnasError, match=r"missing\.json: no such file"):
        load_genotype(tmp_path / "missing.json")


def test_genotype_from_ops_keeps_every_non_none_edge():
    normal = [PRIMITIVES[e % 8] for e in range(14)]
    reduce = ["none"] * 13 + ["sep_conv_5x5"]
    g = genotype_from_ops(normal, reduce)
    edges = cell_edges(4)
    assert g.normal == tuple((op, i, j) for op, (i, j) in zip(normal, edges) if op != "none")
    assert g.reduce == (("sep_conv_5x5", 4, 5),)
    with pytest.raises(ValueError, match="expected 14 ops"):
        genotype_from_ops(normal[:-1], reduce)


def test_top2_keeps_the_two_best_non_none_edges_per_node():
    ops = ["sep_conv_3x3"] * 14
    ops[2] = "none"  # edge (0, 3): would be the best into node 3, but 'none' is never kept
    scores = [float(e) for e in range(14)]
    scores[2] = 100.0
    g = top2_genotype(ops, ops, scores, scores)
    # highest scores win: for node j these are the two largest sources i (scores grow with e)
    expected = {(0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4), (3, 5), (4, 5)}
    assert {(i, j) for _, i, j in g.normal} == expected
    assert g.normal == g.reduce


def test_draw_cell_returns_a_digraph():
    graphviz = pytest.importorskip("graphviz")
    g = Genotype.from_dict(good_dict())
    dot = g.draw("normal")
    assert isinstance(dot, graphviz.Digraph)
    for op, _, _ in GOOD_NORMAL:
        assert op in dot.source
    assert isinstance(draw_cell(g.reduce, g.reduce_concat), graphviz.Digraph)


def test_every_drawing_shows_as_text_without_a_memory_address():
    """A notebook stores a graph's plain text beside its drawing: graphviz's own holds an address that changes
    on every run."""
    pytest.importorskip("graphviz")
    pretty = pytest.importorskip("IPython.lib.pretty")
    import cpnas.plots

    g = Genotype.from_dict(good_dict())
    normal, reduce = cpnas.plots.fig5(g)
    graphs = {"(a) normal cell": normal, "(b) reduction cell": reduce, "fig3_cell_dag": cpnas.plots.fig3_cell_dag(),
              "fig4_ops": cpnas.plots.fig4_ops(ops=("skip_connect",)), "cell": draw_cell(g.reduce, g.reduce_concat)}
    for name, graph in graphs.items():
        assert pretty.pretty(graph) == repr(graph) == f"<graph {name!r}>"
        assert graph.format == "png" and graph.name == name


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' program not installed")
def test_draw_cell_renders_png(data_dir):
    g = load_genotype(data_dir / "darts_v2.json")
    png = g.draw("reduce").pipe(format="png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
