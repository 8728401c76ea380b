"""The gated convolutional autoencoder."""

from earshot.models.autoencoder import GatedConvAutoencoder, build_model, count_parameters, training_flops_per_window

__all__ = ["GatedConvAutoencoder", "build_model", "count_parameters", "training_flops_per_window"]
