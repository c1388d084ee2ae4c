"""Training: the LightningModule (supervised), its losses, schedules, callbacks and checkpoints, muP's learning
rates, fine-tuning, cross-validation, the tuner, the DDP relaunch under `-m`, a study trial's reports, and what a
run measures about itself. Nothing here reads the composed config: hyperlab.builders hands each piece its values."""
