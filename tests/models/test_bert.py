"""BERT against HuggingFace transformers holding the same weights (fp32, atol 1e-5)."""

import pytest
import torch
import transformers as T

from attnlab.errors import AttnlabError
from attnlab.models import BERT, BERTConfig
from attnlab.models.bert import bert_config

ATOL = 1e-5
HF_CLASSES = {
    "base": T.BertModel,
    "pretraining": T.BertForPreTraining,
    "mlm": T.BertForMaskedLM,
    "classifier": T.BertForSequenceClassification,
}
CONFIGS = [
    dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=40, max_position_embeddings=24),
    dict(vocab_size=45, hidden_size=24, num_hidden_layers=3, num_attention_heads=4, intermediate_size=32,
         max_position_embeddings=16, type_vocab_size=3, hidden_act="gelu_new", layer_norm_eps=1e-7, num_labels=3),
]


def hf_model(head, config):
    return HF_CLASSES[head](T.BertConfig(**config)).eval()


def inputs(config, batch=3, length=9):
    ids = torch.randint(0, config["vocab_size"], (batch, length))
    types = torch.randint(0, config.get("type_vocab_size", 2), (batch, length))
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 5:] = 0  # a padded row
    mask[2, 2:] = 0
    return ids, types, mask


def hf_outputs(hf, head, out):
    """HF's output fields under attnlab's names."""
    named = {"last_hidden_state": "last_hidden_state", "pooler_output": "pooler_output", "prediction_logits": "mlm_logits",
             "seq_relationship_logits": "nsp_logits"}
    fields = {named[k]: v for k, v in out.items() if k in named}
    if head == "mlm":
        fields["mlm_logits"] = out.logits
    if head == "classifier":
        fields["logits"] = out.logits
    return fields


@pytest.mark.parametrize("config", CONFIGS, ids=["c0", "c1"])
@pytest.mark.parametrize("head", list(HF_CLASSES))
def test_against_hf_every_head(head, config):
    hf = hf_model(head, config)
    ours = BERT.from_hf(hf)
    assert ours.config.head == head and not ours.training
    ids, types, mask = inputs(config)
    with torch.no_grad():
        expected = hf_outputs(hf, head, hf(input_ids=ids, token_type_ids=types, attention_mask=mask))
        got = ours(ids, types, mask)
    assert expected
    for name, value in expected.items():
        torch.testing.assert_close(getattr(got, name), value, atol=ATOL, rtol=0, msg=name)


def test_padding_never_changes_real_positions():
    ours = BERT.from_hf(hf_model("pretraining", CONFIGS[0]))
    ids, types, mask = inputs(CONFIGS[0])
    with torch.no_grad():
        padded = ours(ids, types, mask)
        for row in range(ids.shape[0]):
            n = int(mask[row].sum())
            alone = ours(ids[row : row + 1, :n], types[row : row + 1, :n])
            torch.testing.assert_close(padded.last_hidden_state[row, :n], alone.last_hidden_state[0], atol=ATOL, rtol=0)
            torch.testing.assert_close(padded.nsp_logits[row], alone.nsp_logits[0], atol=ATOL, rtol=0)


def test_attentions_and_losses_against_hf():
    hf = T.BertForPreTraining(T.BertConfig(**CONFIGS[0], attn_implementation="eager")).eval()
    ours = BERT.from_hf(hf)
    ids, types, mask = inputs(CONFIGS[0])
    labels = torch.where(torch.rand(ids.shape) < 0.3, ids, torch.full_like(ids, -100))
    labels[:, 0] = ids[:, 0]
    nsp = torch.tensor([0, 1, 1])
    expected = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels,
                  next_sentence_label=nsp, output_attentions=True)
    got = ours(ids, types, mask, need_weights=True, mlm_labels=labels, next_sentence_label=nsp)
    assert list(got.attentions) == ["layers.0.self", "layers.1.self"]
    for a, b in zip(got.attentions.values(), expected.attentions, strict=True):
        real = mask.bool()[:, None, :, None]  # rows of padding queries are not compared
        torch.testing.assert_close(a * real, b * real, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.loss, expected.loss, atol=ATOL, rtol=0)
    labeled = labels != -100  # with labels only the labeled positions get MLM logits
    torch.testing.assert_close(got.mlm_logits, expected.prediction_logits[labeled], atol=ATOL, rtol=0)
    got.loss.backward()
    expected.loss.backward()
    torch.testing.assert_close(
        ours.layers[0].self_attn.q_proj.weight.grad,
        hf.bert.encoder.layer[0].attention.self.query.weight.grad, atol=ATOL, rtol=0,
    )
    torch.testing.assert_close(ours.embeddings.word.weight.grad, hf.bert.embeddings.word_embeddings.weight.grad, atol=ATOL, rtol=0)


def test_classifier_loss_against_hf():
    hf = hf_model("classifier", CONFIGS[1])
    ours = BERT.from_hf(hf)
    assert ours.config.labels == ["LABEL_0", "LABEL_1", "LABEL_2"]
    ids, types, mask = inputs(CONFIGS[1])
    labels = torch.tensor([2, 0, 1])
    expected = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels).loss
    torch.testing.assert_close(ours(ids, types, mask, labels=labels).loss, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("head", ["pretraining", "classifier"])
def test_save_pretrained_is_a_huggingface_folder(tmp_path, head):
    config = bert_config("tiny", vocab_size=50, max_positions=20, head=head, labels=["neg", "pos"] if head == "classifier" else [])
    ours = BERT(config).eval()
    ours.save_pretrained(tmp_path)
    hf = HF_CLASSES[head].from_pretrained(tmp_path).eval()
    ids, types, mask = inputs({"vocab_size": 50})
    with torch.no_grad():
        expected = hf_outputs(hf, head, hf(input_ids=ids, token_type_ids=types, attention_mask=mask))
        got = ours(ids, types, mask)
    for name, value in expected.items():
        torch.testing.assert_close(getattr(got, name), value, atol=ATOL, rtol=0)
    again = BERT.from_pretrained(tmp_path)
    assert again.config == config
    torch.testing.assert_close(again(ids, types, mask).last_hidden_state, got.last_hidden_state, atol=0, rtol=0)
    if head == "classifier":
        assert hf.config.id2label == {0: "neg", 1: "pos"}


@pytest.mark.parametrize("head", ["mlm", "base"])
def test_from_pretrained_reads_huggingface_folders(tmp_path, head):
    hf = hf_model(head, CONFIGS[0])
    hf.save_pretrained(tmp_path)
    ours = BERT.from_pretrained(tmp_path)
    ids, types, mask = inputs(CONFIGS[0])
    with torch.no_grad():
        expected = hf_outputs(hf, head, hf(input_ids=ids, token_type_ids=types, attention_mask=mask))
        got = ours(ids, types, mask)
    for name, value in expected.items():
        torch.testing.assert_close(getattr(got, name), value, atol=ATOL, rtol=0)


def test_mlm_decoder_is_tied_to_word_embeddings():
    ours = BERT(bert_config("tiny", head="mlm", add_pooler=False))
    with torch.no_grad():
        ours.embeddings.word.weight[7].fill_(1.0)
    h = torch.randn(2, 64)
    expected = ours.mlm_norm(torch.nn.functional.gelu(ours.mlm_dense(h))) @ ours.embeddings.word.weight.T + ours.mlm_bias
    torch.testing.assert_close(ours.mlm_logits(h), expected, atol=ATOL, rtol=0)


def test_bad_input_gives_clear_errors():
    ours = BERT(bert_config("tiny", vocab_size=30, max_positions=8))
    with pytest.raises(AttnlabError, match=r"input_ids holds ids in \[1, 30\]; expected ids in \[0, 29\]"):
        ours(torch.tensor([[1, 30]]))
    with pytest.raises(AttnlabError, match="longer than the model's limit of max_positions=8"):
        ours(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(AttnlabError, match="token_type_ids"):
        ours(torch.zeros(1, 4, dtype=torch.long), torch.full((1, 4), 2))
    with pytest.raises(AttnlabError, match="attention_mask must have the shape"):
        ours(torch.zeros(1, 4, dtype=torch.long), attention_mask=torch.ones(1, 3))
    with pytest.raises(AttnlabError, match="head"):
        BERTConfig(head="qa")
    with pytest.raises(AttnlabError, match="labels"):
        BERTConfig(head="classifier")


def test_with_head_keeps_the_encoder():
    pretrained = BERT.from_hf(hf_model("pretraining", CONFIGS[0]))
    classifier = pretrained.with_head("classifier", labels=["a", "b", "c"]).eval()
    assert classifier.config.head == "classifier" and classifier.classifier.out_features == 3
    ids, types, mask = inputs(CONFIGS[0])
    with torch.no_grad():
        expected = pretrained(ids, types, mask)
        got = classifier(ids, types, mask)
    torch.testing.assert_close(got.pooler_output, expected.pooler_output, atol=0, rtol=0)
    assert got.mlm_logits is None and got.logits.shape == (3, 3)


def test_against_hf_default_two_label_classifier_folder(tmp_path):
    """HF leaves id2label out of config.json for its default two labels; such folders load."""
    hf = T.BertForSequenceClassification(T.BertConfig(**CONFIGS[0])).eval()
    hf.save_pretrained(tmp_path / "hf")
    assert "id2label" not in (tmp_path / "hf" / "config.json").read_text()
    ours = BERT.from_pretrained(tmp_path / "hf")
    assert ours.config.head == "classifier" and ours.config.labels == ["LABEL_0", "LABEL_1"]
    ids, types, mask = inputs(CONFIGS[0])
    with torch.no_grad():
        expected = hf(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
        torch.testing.assert_close(ours(ids, types, mask).logits, expected, atol=ATOL, rtol=0)
        ours.save_pretrained(tmp_path / "ours")
        back = T.BertForSequenceClassification.from_pretrained(tmp_path / "ours").eval()
        torch.testing.assert_close(back(input_ids=ids, token_type_ids=types, attention_mask=mask).logits, expected,
                                   atol=ATOL, rtol=0)
    labels = torch.tensor([0, 1, 1])
    ours(ids, types, mask, labels=labels).loss.backward()
    hf(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels).loss.backward()
    torch.testing.assert_close(ours.classifier.weight.grad, hf.classifier.weight.grad, atol=ATOL, rtol=0)
    torch.testing.assert_close(ours.layers[0].ffn.linear1.weight.grad,
                               hf.bert.encoder.layer[0].intermediate.dense.weight.grad, atol=ATOL, rtol=0)


DECODER_CLASSES = {"base": T.BertModel, "lm": T.BertLMHeadModel, "nsp": T.BertForNextSentencePrediction}


@pytest.mark.parametrize("head", list(DECODER_CLASSES))
@pytest.mark.parametrize("is_decoder", [True, False])
def test_against_hf_decoder_lm_and_nsp_heads(head, is_decoder, tmp_path):
    """is_decoder=True runs causally as HF does (outputs, weights, loss, gradients), for
    BertModel, BertLMHeadModel and BertForNextSentencePrediction; save/load both ways."""
    config = T.BertConfig(**CONFIGS[0], is_decoder=is_decoder, attn_implementation="eager")
    hf = DECODER_CLASSES[head](config).train()  # dropout 0.1: compare in eval, gradients below
    hf.eval()
    ours = BERT.from_hf(hf)
    assert ours.config.head == head and ours.config.is_decoder == is_decoder
    ids, types, mask = inputs(CONFIGS[0])
    labels = {"lm": ids, "nsp": torch.tensor([0, 1, 1])}.get(head)
    expected = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, output_attentions=True,
                  **({} if labels is None else dict(labels=labels)))
    got = ours(ids, types, mask, need_weights=True, **{"lm": dict(labels=labels),
                                                       "nsp": dict(next_sentence_label=labels)}.get(head, {}))
    if head == "base":
        torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, atol=ATOL, rtol=0)
    else:
        field = "mlm_logits" if head == "lm" else "nsp_logits"
        torch.testing.assert_close(getattr(got, field), expected.logits, atol=ATOL, rtol=0)
        torch.testing.assert_close(got.loss, expected.loss, atol=ATOL, rtol=0)
        got.loss.backward(), expected.loss.backward()
        torch.testing.assert_close(ours.layers[0].self_attn.q_proj.weight.grad,
                                   hf.bert.encoder.layer[0].attention.self.query.weight.grad, atol=ATOL, rtol=0)
    with torch.no_grad():  # without padding (PyTorch's causal flag instead of a mask)
        unpadded = ours(ids, types)
        ref = hf(input_ids=ids, token_type_ids=types)
        mine = unpadded.last_hidden_state if head == "base" else (unpadded.mlm_logits if head == "lm" else unpadded.nsp_logits)
        torch.testing.assert_close(mine, ref.last_hidden_state if head == "base" else ref.logits, atol=ATOL, rtol=0)
    kinds = {e.kind for e in got.attentions.entries()}
    assert kinds == {"causal" if is_decoder else "self"}
    for a, b in zip(got.attentions.values(), expected.attentions, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    ours.save_pretrained(tmp_path / "ours")
    back = DECODER_CLASSES[head].from_pretrained(tmp_path / "ours").eval()
    hf.save_pretrained(tmp_path / "hf")
    again = BERT.from_pretrained(tmp_path / "hf")
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask)
        mine = again(ids, types, mask)
        theirs = back(input_ids=ids, token_type_ids=types, attention_mask=mask)
    name = "last_hidden_state" if head == "base" else "logits"
    torch.testing.assert_close(getattr(theirs, name), getattr(ref, name), atol=ATOL, rtol=0)
    mine_value = mine.last_hidden_state if head == "base" else (mine.mlm_logits if head == "lm" else mine.nsp_logits)
    torch.testing.assert_close(mine_value, getattr(ref, name), atol=ATOL, rtol=0)


def test_labels_out_of_range_are_clear_errors():
    mlm = BERT(bert_config("tiny", vocab_size=30, max_positions=8, head="pretraining"))
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(AttnlabError, match=r"mlm_labels holds values in \[2, 30\]"):
        mlm(ids, mlm_labels=torch.tensor([[-100, 30, 2]]))
    with pytest.raises(AttnlabError, match="next_sentence_label"):
        mlm(ids, next_sentence_label=torch.tensor([2]))
    classifier = BERT(bert_config("tiny", vocab_size=30, max_positions=8, head="classifier", labels=["a", "b"]))
    with pytest.raises(AttnlabError, match=r"labels holds values in \[-1, -1\]"):
        classifier(ids, labels=torch.tensor([-1]))
    with pytest.raises(AttnlabError, match=r"labels must be an integer tensor of shape \(1,\)"):
        classifier(ids, labels=torch.tensor([0, 1]))
    with pytest.raises(AttnlabError, match="empty"):
        classifier(torch.zeros(0, 3, dtype=torch.long))


def reference_relative_bert(tensors: dict, config: dict, ids, types, mask, key_query: bool):
    """HF's (transformers < 5) relative_key / relative_key_query BertModel, in fp64 from
    the folder's tensors: no absolute positions; scores (q.k + q.r [+ k.r]) / sqrt(Dh)."""
    t = {k: v.double() for k, v in tensors.items()}
    h, heads = config["hidden_size"], config["num_attention_heads"]
    dh, eps, p = h // heads, config.get("layer_norm_eps", 1e-12), config["max_position_embeddings"]

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (h,), t[name + ".weight"], t[name + ".bias"], eps)

    def lin(x, name):
        return x @ t[name + ".weight"].T + t[name + ".bias"]

    def split(y):  # (B, L, D) -> (B, H, L, Dh)
        return y.view(b, length, heads, dh).transpose(1, 2)

    b, length = ids.shape
    x = ln(t["embeddings.word_embeddings.weight"][ids] + t["embeddings.token_type_embeddings.weight"][types],
           "embeddings.LayerNorm")
    distance = torch.arange(length)[:, None] - torch.arange(length)[None, :] + p - 1  # (L, L)
    for i in range(config["num_hidden_layers"]):
        pre = f"encoder.layer.{i}."
        q, k, v = (split(lin(x, pre + f"attention.self.{n}")) for n in ("query", "key", "value"))
        r = t[pre + "attention.self.distance_embedding.weight"][distance]  # (L, L, Dh)
        scores = q @ k.transpose(-1, -2) + torch.einsum("bhld,lrd->bhlr", q, r)
        if key_query:
            scores = scores + torch.einsum("bhrd,lrd->bhlr", k, r)
        scores = scores / dh**0.5 + (1.0 - mask[:, None, None, :].double()) * -1e9
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, length, h)
        x = ln(x + lin(context, pre + "attention.output.dense"), pre + "attention.output.LayerNorm")
        ffn = lin(torch.nn.functional.gelu(lin(x, pre + "intermediate.dense")), pre + "output.dense")
        x = ln(x + ffn, pre + "output.LayerNorm")
    return x


@pytest.mark.parametrize("kind", ["relative_key", "relative_key_query"])
def test_against_hf_relative_position_embeddings(kind, tmp_path):
    """A folder of HF's relative-position BERT (transformers < 5 wrote them; 5.x dropped the
    option) loads and equals the formula of HF's old code; attnlab writes the same folder back."""
    from attnlab.io import read_json, read_safetensors, write_json, write_safetensors

    config = dict(CONFIGS[0], position_embedding_type=kind)
    hf = T.BertModel(T.BertConfig(**CONFIGS[0])).eval()
    hf.save_pretrained(tmp_path / "hf")
    tensors = read_safetensors(tmp_path / "hf" / "model.safetensors")
    for i in range(config["num_hidden_layers"]):  # the tables HF's old code stored per layer
        tensors[f"encoder.layer.{i}.attention.self.distance_embedding.weight"] = torch.randn(
            2 * config["max_position_embeddings"] - 1, config["hidden_size"] // config["num_attention_heads"]
        )
    write_safetensors(tmp_path / "hf" / "model.safetensors", tensors, metadata={"format": "pt"})
    write_json(tmp_path / "hf" / "config.json", {**read_json(tmp_path / "hf" / "config.json"), "position_embedding_type": kind})
    ours = BERT.from_pretrained(tmp_path / "hf")
    assert ours.config.position_embedding_type == kind
    ids, types, mask = inputs(CONFIGS[0])
    expected = reference_relative_bert(tensors, config, ids, types, mask, key_query=kind == "relative_key_query")
    with torch.no_grad():
        got = ours(ids, types, mask, need_weights=True)
    real = mask.bool()
    torch.testing.assert_close(got.last_hidden_state[real].double(), expected[real], atol=ATOL, rtol=0)
    torch.testing.assert_close(got.attentions["layers.1.self"].sum(-1), torch.ones(3, 2, 9), atol=1e-6, rtol=0)
    ours.save_pretrained(tmp_path / "ours")
    assert read_json(tmp_path / "ours" / "config.json")["position_embedding_type"] == kind
    written = read_safetensors(tmp_path / "ours" / "model.safetensors")
    assert torch.equal(written["encoder.layer.1.attention.self.distance_embedding.weight"],
                       tensors["encoder.layer.1.attention.self.distance_embedding.weight"])
    with torch.no_grad():
        torch.testing.assert_close(BERT.from_pretrained(tmp_path / "ours")(ids, types, mask).last_hidden_state,
                                   got.last_hidden_state, atol=0, rtol=0)
    ours.train()
    ours(ids, types, mask).last_hidden_state.sum().backward()  # the tables train
    assert ours.layers[0].self_attn.score_bias.distance.weight.grad.abs().sum() > 0
