"""GAT and HAN node classifiers: against stacks of PyG convs, HAN's formula, checkpoints, training.

Tolerances: fp32 logits 1e-5. Training: stated accuracy on a small high-homophily SBM.
"""

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import GATConv as PygGATConv
from torch_geometric.nn import GATv2Conv as PygGATv2Conv

from attnlab.attention import GATConv
from attnlab.data.graphs import academic_graph, stochastic_block_model
from attnlab.errors import AttnlabError
from attnlab.models import GAT, HAN, GATConfig, HANConfig


@pytest.mark.parametrize("v2, out_heads", [(False, 1), (True, 4)])
def test_gat_against_pyg_stack(v2, out_heads):
    """The paper's architecture built from PyG convs gives the same logits once copied in."""
    data = stochastic_block_model(num_nodes=90, num_classes=3, train_per_class=5, num_val=10)
    config = GATConfig(data.x.size(1), 3, hidden_dim=4, heads=3, out_heads=out_heads, v2=v2)
    conv = PygGATv2Conv if v2 else PygGATConv
    pyg = [conv(config.in_dim, 4, heads=3), conv(12, 3, heads=out_heads, concat=out_heads == 1)]
    model = GAT(config).eval()
    model.convs = torch.nn.ModuleList(GATConv.from_pyg(c) for c in pyg)
    expected = pyg[1](F.elu(pyg[0](data.x, data.edge_index)), data.edge_index)
    output = model(data.x, data.edge_index, need_weights=True)
    torch.testing.assert_close(output.logits, expected, atol=1e-5, rtol=1e-5)
    assert list(output.attentions) == ["layers.0.graph", "layers.1.graph"]
    assert [e.kind for e in output.attentions.entries()] == ["graph", "graph"]
    assert [a.shape for _, a in output.attentions.values()] == [(data.edge_index.size(1) + 90, 3), (data.edge_index.size(1) + 90, out_heads)]
    assert model(data.x, data.edge_index).attentions is None


@pytest.mark.parametrize("v2, out_heads, layers", [(False, 1, 2), (True, 4, 3)])
def test_gat_own_construction_against_pyg_stack_from_the_same_config(v2, out_heads, layers):
    """GAT builds its layers from the config (dims, heads, concat, slope, dropout, v2) as a
    PyG stack built from the same config: the PyG weights load into GAT's own layers
    unchanged, and the logits and attention weights agree."""
    data = stochastic_block_model(num_nodes=90, num_classes=3, train_per_class=5, num_val=10)
    config = GATConfig(data.x.size(1), 3, hidden_dim=4, heads=3, out_heads=out_heads, num_layers=layers,
                       negative_slope=0.15, dropout=0.3, v2=v2)
    conv = PygGATv2Conv if v2 else PygGATConv
    common = dict(negative_slope=config.negative_slope, dropout=config.dropout)
    widths = [config.in_dim] + [config.hidden_dim * config.heads] * (layers - 1)
    pyg = [conv(w, config.hidden_dim, heads=config.heads, **common) for w in widths[:-1]]
    pyg.append(conv(widths[-1], config.num_classes, heads=out_heads, concat=out_heads == 1, **common))
    model = GAT(config).eval()
    assert len(model.convs) == len(pyg)
    for ours, theirs in zip(model.convs, pyg):
        reference = GATConv.from_pyg(theirs)
        assert repr(ours) == repr(reference) and ours.dropout == reference.dropout
        ours.load_state_dict(reference.state_dict(), strict=True)  # same names and shapes
        theirs.eval()
    x, alphas = data.x, []
    for i, layer in enumerate(pyg):
        x, (_, alpha) = layer(x, data.edge_index, return_attention_weights=True)
        alphas.append(alpha)
        if i < len(pyg) - 1:
            x = F.elu(x)
    out = model(data.x, data.edge_index, need_weights=True)
    torch.testing.assert_close(out.logits, x, atol=1e-5, rtol=1e-5)
    for ours, alpha in zip(out.attentions.values(), alphas, strict=True):
        torch.testing.assert_close(ours.alpha, alpha, atol=1e-5, rtol=1e-5)


def test_han_is_node_level_gat_plus_semantic_attention():
    data = academic_graph(num_authors=60, num_papers=120, num_venues=8, train_per_class=3, num_val=8)
    edges = list(data.metapaths.values())
    model = HAN(HANConfig(data.x.size(1), data.num_classes, len(edges), hidden_dim=4, heads=2, semantic_dim=16)).eval()
    output = model(data.x, edges, need_weights=True)
    torch.testing.assert_close(output.semantic_weights.sum(), torch.tensor(1.0))
    # the paper's equations in fp64, from the layers' weights
    views = torch.stack([F.elu(conv(data.x, e)) for conv, e in zip(model.node_level, edges)], 1).double()
    W, b = model.semantic.project.weight.double(), model.semantic.project.bias.double()
    w = (torch.tanh(views @ W.t() + b) @ model.semantic.query.double()).mean(0)  # (P,)
    beta = torch.softmax(w, 0)
    z = (beta[None, :, None] * views).sum(1)
    logits = z @ model.classifier.weight.double().t() + model.classifier.bias.double()
    torch.testing.assert_close(output.semantic_weights.double(), beta, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(output.logits.double(), logits, atol=1e-5, rtol=1e-5)
    assert list(output.attentions) == [f"metapath.{p}.graph" for p in range(len(edges))]
    assert output.attentions.entry("metapath.0.graph").axes == ("nodes", "nodes")
    assert model(data.x, edges).attentions is None
    with pytest.raises(AttnlabError, match="meta-path"):
        model(data.x, edges[:1])


@pytest.mark.parametrize("cls, config", [
    (GAT, GATConfig(in_dim=5, num_classes=3, hidden_dim=2, heads=2, v2=True)),
    (HAN, HANConfig(in_dim=5, num_classes=3, num_metapaths=2, hidden_dim=2, heads=2, semantic_dim=4)),
])
def test_checkpoint_round_trip(tmp_path, cls, config):
    x, edge_index = torch.randn(12, 5), torch.randint(0, 12, (2, 30))
    inputs = (x, edge_index) if cls is GAT else (x, [edge_index, edge_index.flip(0)])
    model = cls(config).eval()
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path)
    assert loaded.config == config
    torch.testing.assert_close(loaded(*inputs).logits, model(*inputs).logits, atol=0, rtol=0)


def test_gat_rejects_zero_layers():
    with pytest.raises(AttnlabError, match="num_layers"):
        GAT(GATConfig(in_dim=4, num_classes=2, num_layers=0))


def _pyg_stack(config: GATConfig) -> list[torch.nn.Module]:
    """The paper's GAT as PyG layers, from a GATConfig: hidden convs of ``heads`` x
    ``hidden_dim`` concatenated, a last conv of ``out_heads`` (averaged when > 1)."""
    conv = PygGATv2Conv if config.v2 else PygGATConv
    common = dict(negative_slope=config.negative_slope, dropout=config.dropout)
    widths = [config.in_dim] + [config.hidden_dim * config.heads] * (config.num_layers - 1)
    layers = [conv(w, config.hidden_dim, heads=config.heads, **common) for w in widths[:-1]]
    layers.append(conv(widths[-1], config.num_classes, heads=config.out_heads, concat=config.out_heads == 1, **common))
    return layers


def _pyg_forward(layers: list[torch.nn.Module], x, edge_index, dropout: float, training: bool):
    """The paper's forward pass: dropout on each layer's input, ELU between layers."""
    for i, layer in enumerate(layers):
        x = layer(F.dropout(x, dropout, training), edge_index)
        if i < len(layers) - 1:
            x = F.elu(x)
    return x


@pytest.mark.parametrize("v2, out_heads, layers", [(False, 1, 2), (True, 3, 3)])
def test_gat_training_forward_against_pyg_stack(v2, out_heads, layers):
    """In training mode too (feature dropout before every layer, ELU between): with the same
    seed GAT's own layers and the PyG stack draw the same feature masks and give the same
    logits and gradients -- a dropout or an ELU in the wrong place, a missing one, or a layer
    built with other sizes, shows. Attention dropout has the config's rate in both (checked);
    it draws its mask over the edges in another element order than PyG's (same distribution,
    other masks), so it is set to 0 on both sides for the comparison."""
    data = stochastic_block_model(num_nodes=60, num_classes=3, train_per_class=5, num_val=10)
    config = GATConfig(data.x.size(1), 3, hidden_dim=4, heads=2, out_heads=out_heads, num_layers=layers,
                       dropout=0.4, negative_slope=0.1, v2=v2)
    pyg = _pyg_stack(config)
    model = GAT(config).train()
    for ours, theirs in zip(model.convs, pyg, strict=True):
        ours.load_state_dict(GATConv.from_pyg(theirs).state_dict(), strict=True)
        assert ours.dropout == theirs.dropout == config.dropout
        ours.dropout = theirs.dropout = 0.0
        theirs.train()
    torch.manual_seed(7)
    expected = _pyg_forward(pyg, data.x, data.edge_index, config.dropout, training=True)
    torch.manual_seed(7)
    logits = model(data.x, data.edge_index).logits
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(logits, model.eval()(data.x, data.edge_index).logits)  # dropout did act
    expected.square().sum().backward()
    logits.square().sum().backward()
    for ours, theirs in zip(model.convs, pyg):
        reference = dict(GATConv.from_pyg(theirs).named_parameters())
        for name, p in ours.named_parameters():
            their_grad = _grad_in_attnlab_layout(theirs, name, reference[name])
            torch.testing.assert_close(p.grad, their_grad, atol=1e-4, rtol=1e-4, msg=name)


def _grad_in_attnlab_layout(pyg_layer, name: str, like: torch.Tensor) -> torch.Tensor:
    """The gradient PyG holds for the parameter that attnlab calls ``name``, reshaped like it."""
    mapping = {"lin_src.weight": ("lin_l.weight", "lin_src.weight", "lin.weight"),
               "lin_dst.weight": ("lin_r.weight", "lin_dst.weight", "lin.weight"),
               "lin_src.bias": ("lin_l.bias",), "lin_dst.bias": ("lin_r.bias",),
               "att_src": ("att_src", "att"), "att_dst": ("att_dst",), "att": ("att",), "bias": ("bias",)}
    params = dict(pyg_layer.named_parameters())
    for candidate in mapping.get(name, (name,)):
        if candidate in params and params[candidate].grad is not None:
            return params[candidate].grad.reshape(like.shape)
    raise AssertionError(f"no PyG gradient for {name} in {sorted(params)}")
