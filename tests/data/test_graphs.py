"""Embedded graphs (karate club, SBM, academic meta-paths) and the CSV loader."""

import networkx as nx
import pytest
import torch

from attnlab.data.graphs import academic_graph, karate_club, load_csv_graph, stochastic_block_model
from attnlab.errors import AttnlabError


def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


def assert_masks_partition_labelled(data):
    masks = torch.stack([data.train_mask, data.val_mask, data.test_mask]).int()
    assert (masks.sum(0) == (data.y >= 0).int()).all()


def test_karate_club_matches_networkx():
    data = karate_club(train_per_class=2)
    graph = nx.karate_club_graph()
    expected = {(i, j) for i, j in graph.edges()} | {(j, i) for i, j in graph.edges()}
    assert edge_set(data.edge_index) == expected and data.edge_index.size(1) == 156
    assert data.y.tolist() == [int(graph.nodes[i]["club"] == "Officer") for i in range(34)]
    assert torch.bincount(data.y[data.train_mask]).tolist() == [2, 2]
    assert_masks_partition_labelled(data)


@pytest.mark.parametrize("homophily", [0.1, 0.5, 0.9])
def test_sbm_homophily_knob(homophily):
    data = stochastic_block_model(num_nodes=400, homophily=homophily, seed=3)
    src, dst = data.edge_index
    measured = (data.y[src] == data.y[dst]).float().mean().item()
    assert abs(measured - homophily) < 0.05
    assert edge_set(data.edge_index) == edge_set(data.edge_index.flip(0))  # undirected
    assert (src != dst).all() and len(edge_set(data.edge_index)) == src.numel()  # no loops, no duplicates
    assert_masks_partition_labelled(data)


def test_sbm_features_are_class_correlated_and_seeded():
    a, b = stochastic_block_model(seed=1), stochastic_block_model(seed=1)
    assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
    means = torch.stack([a.x[a.y == c].mean(0) for c in range(a.num_classes)])
    within = torch.stack([(a.x[a.y == c] - means[c]).norm(dim=1).mean() for c in range(a.num_classes)])
    assert torch.cdist(means, means).max() > 0.3 * within.mean()
    assert not torch.equal(stochastic_block_model(seed=2).x, a.x)
    with pytest.raises(AttnlabError, match="homophily"):
        stochastic_block_model(homophily=1.5)


def test_academic_metapaths_link_authors_of_the_same_area():
    data = academic_graph(seed=0)
    assert set(data.metapaths) == {"author-paper-author", "author-paper-venue-paper-author"}
    # co-authors share the area most of the time; same-venue authors clearly more than chance (1/4)
    for (name, edges), least in zip(data.metapaths.items(), (0.6, 0.35)):
        assert edges.max() < data.num_nodes and (edges[0] != edges[1]).all()
        same_area = (data.y[edges[0]] == data.y[edges[1]]).float().mean()
        assert same_area > least, name
        assert torch.bincount(edges[1], minlength=data.num_nodes).max() <= 16  # neighbour sampling


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_graph(tmp_path):
    nodes = write(tmp_path / "nodes.csv", "id,label,split,f1,f2\na,x,train,1,0\nb,y,train,0,1\nc,x,test,1,1\nd,,,0,0\ne,y,val,2,2\n")
    edges = write(tmp_path / "edges.csv", "source,target\na,b\nb,c\nc,d\nd,e\n")
    data = load_csv_graph(edges, nodes)
    assert data.node_names == ["a", "b", "c", "d", "e"] and data.class_names == ["x", "y"]
    assert data.y.tolist() == [0, 1, 0, -1, 1]
    assert data.x.tolist() == [[1, 0], [0, 1], [1, 1], [0, 0], [2, 2]]
    assert edge_set(data.edge_index) == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2), (3, 4), (4, 3)}
    assert data.train_mask.tolist() == [True, True, False, False, False]
    assert data.val_mask.tolist() == [False, False, False, False, True]
    assert data.test_mask.tolist() == [False, False, True, False, False]


def test_csv_without_features_or_splits(tmp_path):
    nodes = write(tmp_path / "n.csv", "id,label\n" + "".join(f"n{i},{'ab'[i % 2]}\n" for i in range(10)))
    edges = write(tmp_path / "e.csv", "source,target\nn0,n1\n")
    data = load_csv_graph(edges, nodes, train_per_class=2, num_val=2)
    assert torch.equal(data.x, torch.eye(10))
    assert int(data.train_mask.sum()) == 4 and int(data.val_mask.sum()) == 2 and int(data.test_mask.sum()) == 4


@pytest.mark.parametrize("nodes, edges, message", [
    ("id,label\na,x\nb,y\n", "source,target\na,zz\n", "e.csv:2: target 'zz'"),
    ("id,label\na,x\nb,y\n", "from,to\na,b\n", "missing column"),
    ("name,label\na,x\n", "source,target\n", "missing column"),
    ("id,label,f\na,x,1\nb,y,oops\n", "source,target\n", "must be numbers"),
    ("id,label\na,x\na,y\n", "source,target\n", "unique"),
    ("id,label\na,x\nb,x\n", "source,target\n", "two classes"),
    ("id,label,split\na,x,train\nb,y,dev\n", "source,target\n", "split"),
])
def test_csv_errors(tmp_path, nodes, edges, message):
    with pytest.raises(AttnlabError, match=message):
        load_csv_graph(write(tmp_path / "e.csv", edges), write(tmp_path / "n.csv", nodes))


def test_csv_file_not_found(tmp_path):
    nodes = write(tmp_path / "n.csv", "id,label\na,x\nb,y\n")
    with pytest.raises(AttnlabError, match="missing.csv: file not found"):
        load_csv_graph(tmp_path / "missing.csv", nodes)
