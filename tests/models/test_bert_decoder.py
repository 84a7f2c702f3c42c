"""BERT as the decoder of an encoder-decoder (causal self-attention + cross-attention to
``encoder_hidden_states``) against HuggingFace's ``BertLMHeadModel`` and
``EncoderDecoderModel`` holding the same weights (tiny random configs, fp32, atol 1e-5)."""

import pytest
import torch
import transformers as T

from attnlab.errors import AttnlabError
from attnlab.models import BERT
from attnlab.models.bert import bert_config

ATOL = 1e-5
CONFIG = dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=40,
              max_position_embeddings=24)


def decoder_inputs(batch=3, length=7, source=5):
    torch.manual_seed(0)
    ids = torch.randint(0, CONFIG["vocab_size"], (batch, length))
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 5:] = 0  # a padded target row
    states = torch.randn(batch, source, CONFIG["hidden_size"])
    states_mask = torch.ones(batch, source, dtype=torch.long)
    states_mask[2, 3:] = 0  # a padded source row
    return ids, mask, states, states_mask


def test_against_hf_lm_head_decoder_with_cross_attention(tmp_path):
    """Logits, loss, every self- and cross-attention map and the cross-attention's gradients
    equal HF's; the folder goes both ways."""
    config = T.BertConfig(**CONFIG, is_decoder=True, add_cross_attention=True, attn_implementation="eager")
    hf = T.BertLMHeadModel(config).eval()
    ours = BERT.from_hf(hf)
    assert ours.config.head == "lm" and ours.config.add_cross_attention
    ids, mask, states, states_mask = decoder_inputs()
    expected = hf(input_ids=ids, attention_mask=mask, encoder_hidden_states=states, encoder_attention_mask=states_mask,
                  labels=ids, output_attentions=True)
    got = ours(ids, attention_mask=mask, encoder_hidden_states=states, encoder_attention_mask=states_mask, labels=ids,
               need_weights=True)
    real = mask.bool()
    torch.testing.assert_close(got.mlm_logits[real], expected.logits[real], atol=ATOL, rtol=0)
    torch.testing.assert_close(got.loss, expected.loss, atol=ATOL, rtol=0)
    for i in range(2):
        torch.testing.assert_close(got.attentions[f"layers.{i}.self"], expected.attentions[i], atol=ATOL, rtol=0)
        torch.testing.assert_close(got.attentions[f"layers.{i}.cross"], expected.cross_attentions[i], atol=ATOL, rtol=0)
    got.loss.backward(), expected.loss.backward()
    torch.testing.assert_close(ours.layers[1].cross_attn.k_proj.weight.grad,
                               hf.bert.encoder.layer[1].crossattention.self.key.weight.grad, atol=ATOL, rtol=0)
    with torch.no_grad():  # no padding: the causal flag instead of a mask; no source mask
        torch.testing.assert_close(ours(ids, encoder_hidden_states=states).mlm_logits,
                                   hf(input_ids=ids, encoder_hidden_states=states).logits, atol=ATOL, rtol=0)
    ours.save_pretrained(tmp_path / "ours")
    back = T.BertLMHeadModel.from_pretrained(tmp_path / "ours").eval()
    hf.save_pretrained(tmp_path / "hf")
    again = BERT.from_pretrained(tmp_path / "hf")
    with torch.no_grad():
        ref = hf(input_ids=ids, encoder_hidden_states=states, encoder_attention_mask=states_mask).logits
        torch.testing.assert_close(back(input_ids=ids, encoder_hidden_states=states,
                                        encoder_attention_mask=states_mask).logits, ref, atol=ATOL, rtol=0)
        torch.testing.assert_close(again(ids, encoder_hidden_states=states, encoder_attention_mask=states_mask).mlm_logits,
                                   ref, atol=ATOL, rtol=0)


def test_against_hf_encoder_decoder_model():
    """HF's EncoderDecoderModel (BertModel encoder, BertLMHeadModel decoder) with its inputs:
    the two attnlab BERTs chained give its logits."""
    encoder = T.BertModel(T.BertConfig(**CONFIG))
    decoder = T.BertLMHeadModel(T.BertConfig(**CONFIG, is_decoder=True, add_cross_attention=True))
    hf = T.EncoderDecoderModel(encoder=encoder, decoder=decoder).eval()
    ours_encoder, ours_decoder = BERT.from_hf(hf.encoder), BERT.from_hf(hf.decoder)
    torch.manual_seed(1)
    src = torch.randint(0, CONFIG["vocab_size"], (2, 6))
    src_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    tgt = torch.randint(0, CONFIG["vocab_size"], (2, 5))
    with torch.no_grad():
        expected = hf(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt).logits
        memory = ours_encoder(src, attention_mask=src_mask).last_hidden_state
        got = ours_decoder(tgt, encoder_hidden_states=memory, encoder_attention_mask=src_mask).mlm_logits
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_without_encoder_states_the_cross_attention_is_skipped_as_hf_does():
    hf = T.BertLMHeadModel(T.BertConfig(**CONFIG, is_decoder=True, add_cross_attention=True)).eval()
    ids = decoder_inputs()[0]
    with torch.no_grad():
        torch.testing.assert_close(BERT.from_hf(hf)(ids).mlm_logits, hf(input_ids=ids).logits, atol=ATOL, rtol=0)


def test_cross_attention_errors_name_the_argument():
    with pytest.raises(AttnlabError, match="add_cross_attention needs is_decoder"):
        bert_config("tiny", add_cross_attention=True)
    ids, mask, states, states_mask = decoder_inputs()
    encoder_only = BERT(bert_config("tiny", vocab_size=60))
    with pytest.raises(AttnlabError, match="no cross-attention"):
        encoder_only(ids, encoder_hidden_states=torch.randn(3, 5, 64))
    decoder = BERT(bert_config("tiny", vocab_size=60, head="lm", add_pooler=False, is_decoder=True, add_cross_attention=True))
    with pytest.raises(AttnlabError, match=r"encoder_hidden_states must have shape \(B, S, 64\)"):
        decoder(ids, encoder_hidden_states=states)
    with pytest.raises(AttnlabError, match=r"encoder_attention_mask must have shape \(B, S\) = \(3, 5\)"):
        decoder(ids, encoder_hidden_states=torch.randn(3, 5, 64), encoder_attention_mask=states_mask[:, :4])
    with pytest.raises(AttnlabError, match="without encoder_hidden_states"):
        decoder(ids, encoder_attention_mask=states_mask)
