"""DPCD: Dual-Path Conditioned Diffusion decoder (diffusers UNet + ControlNet)."""
