"""Imbalance-VLM (Wang et al. 2023): a lightweight transformer decoder on the tokens of a frozen
CLIP image encoder, trained with an imbalance-aware loss (stage 1), optionally followed by a
second stage on the frozen stage-1 model: DisAlign, cRT, LWS, MARC or tau-normalisation.

Registered names: `decoder` (loss from config, CE default), `decoder_ce`, `decoder_bs` (Balanced
Softmax), `decoder_focal`, and the second stages `decoder_disalign`, `decoder_crt`, `decoder_lws`,
`decoder_marc`, `decoder_taunorm`. Their settings live in benchmarks/methods/decoder*.yaml (the
variants name decoder.yaml as base).

A finished stage 1 is kept under results/work/ in a folder named by a hash of everything it
depends on, so every second stage (and a rerun) on the same stage-1 settings starts from it.
"""
from ltbench.api import METHODS, register_variant
from ltbench.methods.decoder.method import Decoder

__all__ = ["Decoder"]



METHODS.register_module(name="decoder", module=Decoder)
register_variant(Decoder, "decoder_ce", "Imbalance-VLM decoder on frozen CLIP tokens, cross-entropy.")
register_variant(Decoder, "decoder_bs", "Imbalance-VLM decoder on frozen CLIP tokens, Balanced Softmax (CE on z + log p_c).")
register_variant(Decoder, "decoder_focal", "Imbalance-VLM decoder on frozen CLIP tokens, Focal loss (gamma 2).")
register_variant(Decoder, "decoder_disalign", "Imbalance-VLM decoder + DisAlign second stage (confidence-gated per-class scale and bias, GRW loss).")
register_variant(Decoder, "decoder_crt", "Imbalance-VLM decoder + cRT second stage (classifier re-trained with class-balanced sampling).")
register_variant(Decoder, "decoder_lws", "Imbalance-VLM decoder + LWS second stage (per-class logit scale, class-balanced sampling).")
register_variant(Decoder, "decoder_marc", "Imbalance-VLM decoder + MARC second stage (per-class omega z_c + beta ||W_c||, class-balanced CE).")
register_variant(Decoder, "decoder_taunorm", "Imbalance-VLM decoder + tau-normalisation (head rows W_c / ||W_c||^tau, no bias, tau chosen on val).")

