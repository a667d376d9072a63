"""Tiny DPCD modules shared by tests in any folder (import as a plain module:
``from dpcd_support import tiny_dpcd_modules``)."""

import torch


def tiny_dpcd_modules():
    """A tiny random UNet (16×16 images) and its ControlNet, seeded; the ControlNet's
    zero-initialised outputs are perturbed, else they would hide the HCI path from tests."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    from codec.dpcd.configs import controlnet_kwargs, unet_config

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**unet_config("tiny", cross_attention_dim=384))
    controlnet = ControlNetModel.from_unet(unet, **controlnet_kwargs())
    with torch.no_grad():
        for p in controlnet.parameters():
            if not p.abs().sum():
                p.normal_(0, 0.1)
    return unet, controlnet
