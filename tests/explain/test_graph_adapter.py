"""The graph adapter explains a node on its receptive field alone: exact, because a k-layer
GAT's output at a node depends on nothing beyond k hops (fp64: the subgraph's log-probability
equals the full graph's, its raw attention is the full graph's last-layer attention into the
node, and its gradients are the full graph's gradients of that node's output)."""

from __future__ import annotations

import torch

from attnlab.apps.explain import graph_predictions
from attnlab.data.graphs import karate_club
from attnlab.explain.methods import METHODS
from attnlab.models.gat import GAT, GATConfig


def test_the_receptive_field_is_the_whole_story():
    torch.manual_seed(0)
    data = karate_club()
    data.x = data.x.double()
    model = GAT(GATConfig(in_dim=data.x.shape[1], num_classes=len(data.class_names), heads=2, dropout=0.0)).double().eval()
    node = 5
    (x,) = graph_predictions(model, data, [node])
    field = x.extras["field"]
    features = data.x.clone().requires_grad_(True)
    full = model(features, data.edge_index, need_weights=True)
    log_p = torch.log_softmax(full.logits[node], -1)
    target = int(log_p.argmax())
    assert abs(float(x.score(x.inputs[None])[0] - log_p[target].detach())) < 1e-12
    (grad,) = torch.autograd.grad(log_p[target], features)
    torch.testing.assert_close(METHODS["saliency"](x), grad[field].norm(dim=-1), rtol=1e-9, atol=1e-12)
    assert float(grad.norm(dim=-1)[[v for v in range(data.num_nodes) if v not in field]].abs().max()) == 0
    edges, alpha = full.attentions[-1]  # (2, E), (E, H): into the node, heads averaged
    into = edges[1] == node
    expected = torch.zeros(data.num_nodes, dtype=torch.float64)
    expected[edges[0][into]] = alpha[into].mean(-1).detach()
    torch.testing.assert_close(METHODS["raw_attention"](x), expected[field], rtol=1e-9, atol=1e-12)
