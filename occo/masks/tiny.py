"""Random-init Grounding DINO text encoders and models: tiny ones for tests and the offline smoke run
(``masks.init: tiny``), and the real architectures' text parts for rehearsals (``masks.init: random``).

They are built with their libraries' own building blocks, so the stage exercises the exact code
paths of the real models: the Grounding DINO is groundingdino-py's builder run on its shipped
Swin-T OGC config with one encoder and one decoder layer (256 wide: groundingdino-py hard-codes that
width in its text position embedding), 50 queries and a tiny BERT text encoder saved to a folder
(``BertConfig`` + ``save_pretrained``); the transformers Grounding DINO
(``masks.detector: transformers``) is a ``GroundingDinoConfig`` with a tiny Swin and BERT, saved with
its processor to a folder and loaded back like the real one; the SAM is segment-anything's ``Sam``
assembled from ``ImageEncoderViT``, ``PromptEncoder`` and ``MaskDecoder`` at 256 px with a
two-block, 32-wide encoder. Their outputs are meaningless; they only exercise shapes and I/O.

``masks.init: random`` keeps the real architectures (groundingdino-py's shipped config, transformers'
default ``GroundingDinoConfig`` = grounding-dino-tiny's, SAM from ``sam_model_registry``): only the text
encoder's folder is made here, a bert-base-uncased-sized BERT (:func:`bert_base_config`) with the tiny
vocabulary's tokenizer, since bert-base's own vocabulary is a download.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizerFast,
    GroundingDinoConfig,
    GroundingDinoForObjectDetection,
    GroundingDinoImageProcessor,
    GroundingDinoProcessor,
    SwinConfig,
)

TINY_GDINO_OVERRIDES: dict[str, object] = {
    "enc_layers": 1,
    "dec_layers": 1,
    "dim_feedforward": 256,
    "num_queries": 50,
}
"""Grounding DINO config fields changed from the shipped Swin-T OGC config (backbone and width stay)."""
TINY_DETECTOR_SIZE = (128, 214)
"""Shorter side and longest-side cap of the tiny detector's input (the real one: 800, 1333)."""
TINY_SAM_SIZE = 256
"""Input side of the tiny SAM (the real one: 1024)."""
_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "?", ","]


def tiny_tokenizer(folder: Path, words: str) -> BertTokenizerFast:
    """A lower-casing BERT tokenizer over a tiny vocabulary, its ``vocab.txt`` written to ``folder``.

    The vocabulary holds BERT's special tokens, ``.``, ``?`` (Grounding DINO looks both up) and the
    lower-cased words of ``words``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = list(dict.fromkeys(_SPECIAL_TOKENS + [w for w in words.lower().replace(".", " ").split() if w]))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)


def tiny_bert_config(vocab_size: int) -> BertConfig:
    """A 1-layer, 32-wide BERT config."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )


def bert_base_config(vocab_size: int) -> BertConfig:
    """bert-base-uncased's architecture (``BertConfig``'s defaults: 12 layers, 768 wide, 30,522 embeddings)."""
    config = BertConfig()
    if vocab_size > config.vocab_size:
        raise ValueError(f"a vocabulary of {vocab_size} tokens does not fit bert-base's {config.vocab_size}")
    return config


def tiny_bert(
    folder: Path, words: str, *, seed: int = 0, config: Callable[[int], BertConfig] = tiny_bert_config
) -> Path:
    """Write a random-init BERT (``config`` of the vocabulary size: 1 layer, 32 wide by default; bert-base with
    :func:`bert_base_config`) and its tokenizer (:func:`tiny_tokenizer`) to ``folder``; returns ``folder``."""
    tokenizer = tiny_tokenizer(folder, words)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    BertModel(config(len(tokenizer))).save_pretrained(folder)
    return Path(folder)


def random_hf_grounding_dino(folder: Path, words: str, *, seed: int = 0) -> Path:
    """Write transformers' default ``GroundingDinoConfig`` (grounding-dino-tiny's architecture: Swin-T, a
    bert-base text encoder, 900 queries) at random init, with its default image processor (800/1333) and
    :func:`tiny_tokenizer`, to ``folder`` (``save_pretrained``); returns ``folder``."""
    folder = Path(folder)
    tokenizer = tiny_tokenizer(folder, words)
    GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(GroundingDinoConfig(text_config=bert_base_config(len(tokenizer)))).save_pretrained(
        folder
    )
    return folder


def tiny_hf_grounding_dino(folder: Path, words: str, *, seed: int = 0) -> Path:
    """Write a random-init transformers Grounding DINO and its processor to ``folder`` (``save_pretrained``);
    returns ``folder``.

    ``GroundingDinoConfig`` with a 4-stage Swin of one block per stage (16 wide), the 1-layer BERT of
    :func:`tiny_bert_config`, d_model 32, 1 encoder and 2 decoder layers, 50 queries; the processor
    pairs a ``GroundingDinoImageProcessor`` resizing to :data:`TINY_DETECTOR_SIZE` with
    :func:`tiny_tokenizer`. Loaded back with ``from_pretrained`` like the real model's folder.
    """
    folder = Path(folder)
    tokenizer = tiny_tokenizer(folder, words)
    shortest, longest = TINY_DETECTOR_SIZE
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": shortest, "longest_edge": longest})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(
            embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4], window_size=7, out_indices=[2, 3, 4]
        ),
        text_config=tiny_bert_config(len(tokenizer)),
        d_model=32,
        num_queries=50,
        encoder_layers=1,
        decoder_layers=2,  # transformers 5 ties bbox_embed.1.. to bbox_embed.0 and fails when there is none
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
    )
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    return folder


def tiny_grounding_dino_args(text_encoder: Path) -> object:
    """groundingdino-py's shipped Swin-T OGC config (an ``SLConfig``) with the tiny overrides and ``text_encoder``."""
    from occo.masks.detector import gdino_config

    args = gdino_config(text_encoder)
    for key, value in TINY_GDINO_OVERRIDES.items():
        setattr(args, key, value)
    return args


def tiny_sam(*, seed: int = 0) -> Sam:
    """A random-init SAM from segment-anything's building blocks: 256 px input, 2-block 32-wide ViT, 32-d prompts."""
    torch.manual_seed(seed)
    patch, dim = 16, 32
    grid = TINY_SAM_SIZE // patch
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=TINY_SAM_SIZE,
            patch_size=patch,
            embed_dim=32,
            depth=2,
            num_heads=2,
            mlp_ratio=2,
            out_chans=dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=8,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(grid, grid),
            input_image_size=(TINY_SAM_SIZE, TINY_SAM_SIZE),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()
