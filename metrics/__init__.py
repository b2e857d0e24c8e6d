"""GAN evaluation metrics (FID, KID, IS, precision/recall, PPL) with the standard feature networks, no torch."""
