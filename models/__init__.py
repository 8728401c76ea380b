"""The models: the gated convolutional autoencoder, and a user's own through the same registry."""

from earshot.models.autoencoder import GatedConvAutoencoder, count_parameters, training_flops_per_window
from earshot.models.registry import (DEFAULT_MODEL, MODELS, PluginModel, UnknownModelError, build_model,
                                     check_model, code_size, check_model_options, latent_size, model_from_args)

__all__ = ["DEFAULT_MODEL", "GatedConvAutoencoder", "MODELS", "PluginModel", "UnknownModelError", "build_model",
           "check_model", "check_model_options", "code_size", "count_parameters", "latent_size", "model_from_args",
           "training_flops_per_window"]
