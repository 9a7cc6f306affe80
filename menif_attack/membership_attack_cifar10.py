"""White-box gradient attack (Nasr et al. 2019) on the CIFAR-10 models: the loss gradients of the last convolution and the three fully connected layers,
the one-hot label and the loss feed the attack network of docs/NOTES.md §4. It learns from 1,000 members and 1,000 non-members
known to the attacker (data_partitioning.py), keeps the epoch with the best validation AUC, and is evaluated
once on the evaluation rows. Which layers, and why Adam rather than the original's SGD: §7.2."""

LAYERS = ("conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight")
CONV_CHANNELS = 100           # width of each gradient branch (the original: 100)
OPTIMIZER = "adam"              # the original: SGD lr 1e-3, x0.95 per epoch, 100 epochs (§7.2)
LR = 1e-4
LR_DECAY = 0.95                 # per epoch
EPOCHS = 10                     # the epoch with the best validation AUC is kept
BATCH_SIZE = 64
VAL_FRACTION = 0.2              # of the known examples, to choose the epoch and the threshold


if __name__ == "__main__":
    from pipeline import stage_script

    stage_script("gradient", __file__)
