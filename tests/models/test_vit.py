"""ViT against HuggingFace transformers holding the same weights (fp32, atol 1e-5)."""

import pytest
import torch
import transformers as T

from attnlab.errors import AttnlabError
from attnlab.models import ViT, ViTConfig
from attnlab.models.vit import vit_config

ATOL = 1e-5
CONFIGS = [
    dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, image_size=8,
         patch_size=2, num_channels=1, num_labels=10),
    dict(hidden_size=24, num_hidden_layers=3, num_attention_heads=3, intermediate_size=40, image_size=12,
         patch_size=4, num_channels=3, qkv_bias=False, layer_norm_eps=1e-6, num_labels=4),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["grey", "rgb-nobias"])
@pytest.mark.parametrize("hf_class", [T.ViTModel, T.ViTForImageClassification])
def test_against_hf(hf_class, config):
    hf = hf_class(T.ViTConfig(**config)).eval()
    ours = ViT.from_hf(hf)
    x = torch.randn(3, config["num_channels"], config["image_size"], config["image_size"])
    with torch.no_grad():
        expected = hf(pixel_values=x, output_hidden_states=True)
        got = ours(x)
    if hf_class is T.ViTModel:
        torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, atol=ATOL, rtol=0)
        torch.testing.assert_close(got.pooler_output, expected.pooler_output, atol=ATOL, rtol=0)
        assert got.logits is None
    else:
        hf_final = hf.vit.layernorm(expected.hidden_states[-1])
        torch.testing.assert_close(got.last_hidden_state, hf_final, atol=ATOL, rtol=0)
        torch.testing.assert_close(got.logits, expected.logits, atol=ATOL, rtol=0)


def test_other_image_sizes_interpolate_positions_like_hf():
    hf = T.ViTModel(T.ViTConfig(**CONFIGS[0])).eval()
    ours = ViT.from_hf(hf)
    x = torch.randn(2, 1, 12, 6)  # 6x3 patches instead of 4x4
    with torch.no_grad():
        expected = hf(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state
        got = ours(x).last_hidden_state
    assert got.shape == (2, 1 + 18, 16)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_attentions_loss_and_grads_against_hf():
    hf = T.ViTForImageClassification(T.ViTConfig(**CONFIGS[0], attn_implementation="eager")).eval()
    ours = ViT.from_hf(hf)
    x = torch.randn(4, 1, 8, 8)
    labels = torch.tensor([3, 1, 9, 0])
    expected = hf(pixel_values=x, labels=labels, output_attentions=True)
    got = ours(x, labels=labels, need_weights=True)
    assert [e.axes for e in got.attentions.entries()] == [("patches", "patches")] * len(expected.attentions)
    for a, b in zip(got.attentions.values(), expected.attentions, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.loss, expected.loss, atol=ATOL, rtol=0)
    got.loss.backward()
    expected.loss.backward()
    torch.testing.assert_close(
        ours.embeddings.patch.weight.grad, hf.vit.embeddings.patch_embeddings.projection.weight.grad, atol=ATOL, rtol=0
    )
    torch.testing.assert_close(ours.embeddings.positions.grad, hf.vit.embeddings.position_embeddings.grad, atol=ATOL, rtol=0)


def test_save_pretrained_round_trips_through_huggingface(tmp_path):
    ours = ViT(vit_config("digits", num_layers=2, labels=["a", "b", "c"])).eval()
    ours.save_pretrained(tmp_path / "ours")
    hf = T.ViTForImageClassification.from_pretrained(tmp_path / "ours").eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours(x).logits, hf(pixel_values=x).logits, atol=ATOL, rtol=0)
    assert hf.config.id2label == {0: "a", 1: "b", 2: "c"}
    hf.save_pretrained(tmp_path / "hf")
    again = ViT.from_pretrained(tmp_path / "hf")
    assert again.config.labels == ["a", "b", "c"] and again.config.num_layers == 2
    torch.testing.assert_close(again(x).logits, ours(x).logits, atol=ATOL, rtol=0)


def test_model_folder_without_classifier(tmp_path):
    hf = T.ViTModel(T.ViTConfig(**CONFIGS[1])).eval()
    hf.save_pretrained(tmp_path)
    ours = ViT.from_pretrained(tmp_path)
    assert ours.config.add_pooler and not ours.config.labels and not ours.config.qkv_bias
    x = torch.randn(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(ours(x).pooler_output, hf(pixel_values=x).pooler_output, atol=ATOL, rtol=0)


def test_bad_input_gives_clear_errors():
    ours = ViT(vit_config("digits", num_layers=1))
    with pytest.raises(AttnlabError, match=r"image size 1x8 is smaller than one patch \(2x2\)"):
        ours(torch.randn(1, 1, 1, 8))
    with pytest.raises(AttnlabError, match=r"shape \(B, 1, H, W\)"):
        ours(torch.randn(1, 3, 8, 8))
    with pytest.raises(AttnlabError, match="floating point"):
        ours(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(AttnlabError, match=r"patch_size \(12\) must not exceed image_size \(10\)"):
        ViTConfig(image_size=10, patch_size=12)


def test_class_logits_equal_logits_and_hf_gradients():
    hf = T.ViTForImageClassification(T.ViTConfig(**CONFIGS[1])).eval()
    ours = ViT.from_hf(hf)
    x = torch.randn(3, 3, 12, 12)
    labels = torch.tensor([0, 3, 2])
    got = torch.nn.functional.cross_entropy(ours.class_logits(x), labels)
    expected = hf(pixel_values=x, labels=labels).loss
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    got.backward()
    expected.backward()
    torch.testing.assert_close(
        ours.layers[-1].ffn.linear1.weight.grad, hf.vit.layers[-1].mlp.fc1.weight.grad, atol=ATOL, rtol=0
    )
    torch.testing.assert_close(ours.embeddings.cls_token.grad, hf.vit.embeddings.cls_token.grad, atol=ATOL, rtol=0)


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_forward_first_equals_the_first_rows_of_forward(norm_first):
    from attnlab.layers import TransformerBlock

    block = TransformerBlock(16, 4, 24, dropout=0.0, norm_first=norm_first).eval()
    x = torch.randn(2, 7, 16)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])[:, None, None, :]
    expected = block(x, mask=mask).hidden[:, :2]
    torch.testing.assert_close(block.forward_first(x, 2, mask=mask), expected, atol=ATOL, rtol=0)


def test_against_hf_default_two_label_classifier_folder(tmp_path):
    """HF leaves id2label out of config.json for its default two labels; such folders load."""
    config = {k: v for k, v in CONFIGS[0].items() if k != "num_labels"}
    hf = T.ViTForImageClassification(T.ViTConfig(**config)).eval()
    hf.save_pretrained(tmp_path / "hf")
    assert "id2label" not in (tmp_path / "hf" / "config.json").read_text()
    ours = ViT.from_pretrained(tmp_path / "hf")
    assert ours.config.labels == ["LABEL_0", "LABEL_1"]
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        expected = hf(pixel_values=x).logits
        torch.testing.assert_close(ours(x).logits, expected, atol=ATOL, rtol=0)
        ours.save_pretrained(tmp_path / "ours")
        back = T.ViTForImageClassification.from_pretrained(tmp_path / "ours").eval()
        torch.testing.assert_close(back(pixel_values=x).logits, expected, atol=ATOL, rtol=0)
    labels = torch.tensor([0, 1, 1])
    ours(x, labels=labels).loss.backward()
    hf(pixel_values=x, labels=labels).loss.backward()
    torch.testing.assert_close(ours.classifier.weight.grad, hf.classifier.weight.grad, atol=ATOL, rtol=0)
    torch.testing.assert_close(ours.embeddings.patch.weight.grad,
                               hf.vit.embeddings.patch_embeddings.projection.weight.grad, atol=ATOL, rtol=0)


def test_labels_and_empty_batches_are_clear_errors():
    ours = ViT(vit_config("digits"))
    with pytest.raises(AttnlabError, match=r"labels holds values in \[10, 10\]"):
        ours(torch.randn(1, 1, 8, 8), labels=torch.tensor([10]))
    with pytest.raises(AttnlabError, match=r"shape \(2,\)"):
        ours(torch.randn(2, 1, 8, 8), labels=torch.tensor([1]))
    with pytest.raises(AttnlabError, match="empty"):
        ours(torch.randn(0, 1, 8, 8))


def test_against_hf_image_size_not_a_multiple_of_the_patch(tmp_path):
    """HF's ViT takes image_size 30 with 4x4 patches (a 7x7 grid, the last 2 rows and
    columns left out by the stride-4 conv): legal, loaded, equal (fp32, atol 1e-5), also
    at another size (interpolated positions) that is not a multiple either."""
    torch.manual_seed(0)
    config = T.ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                         image_size=30, patch_size=4, num_channels=1)
    hf = T.ViTModel(config).eval()
    hf.save_pretrained(tmp_path)
    ours = ViT.from_pretrained(tmp_path)
    for size, interpolate in ((30, False), (21, True)):
        x = torch.randn(2, 1, size, size)
        with torch.no_grad():
            expected = hf(pixel_values=x, interpolate_pos_encoding=interpolate).last_hidden_state
            torch.testing.assert_close(ours(x).last_hidden_state, expected, atol=ATOL, rtol=0)
