"""One trainer for pretraining, annealing, SFT and the vision-language stages."""
