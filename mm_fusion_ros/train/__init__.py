"""Training of the fusion model on cached simulator (or recorded) data; torchrun DDP aware."""
