"""The papers' settings and numbers, in one place: BlurNet (full paper, Tables I-V), Pixel
Deflection and Defend++. Experiments take their defaults from the settings; reports print the
numbers beside ours and read the settings a run actually used from its record.

Numbers are fractions, not percent. Keys are our model rows (flags/models/<row>.flags).
"""

# --- Settings -----------------------------------------------------------------------------
RP2_LAMBDA = 0.002  # BlurNet's white-box lambda (Tables I-III, V)
RP2_EPOCHS = 300
BLURNET_TRAIN_EPOCHS = 2000  # the BlurNet paper's LISA-CNN training (Adam, cross-entropy)
LINF_EPS = 8 / 255  # BlurNet Table IV / adversarial training; Pixel Deflection's attacks
PGD_STEP = 0.01  # Table IV
PGD_STEPS = 10  # Table IV
MNIST_FGSM_EPS = 0.2  # Defend++ §4.1
DEFENDPP_ATTACKS = ("clean", "fgsm", "bim", "cw", "ddn")  # Defend++ Tables 1-2
DEFENDPP_CHECKS = ("fgsm_curve", "strength_checks")  # its Fig. 7; ours: does the model weaken the attacks?
DEFENDPP_TRANSFERRED = ("fgsm", "bim", "fgsm_curve")  # made on another network, scored on the model (Tables 7-8)
LISA_TEST_FRACTION = 0.2  # our track-held-out split (the paper states none)
MNIST_TEST_FRACTION = 0.3  # the old test-set-only MNIST split
PRECISIONS = ("float32", "mixed_bfloat16")  # our compute precisions (float32 is the papers')
PAPER_CONV_ALPHA = {3: 1e-5, 5: 0.1, 7: 0.1}  # BlurNet's learned blur (conv_k rows of Table II), by kernel size
PAPER_ALPHA = {"tv": 1e-4, "tik_hf": 1e-4, "tik_pseudo": 1e-6}  # BlurNet's feature-map regularisers (Table II)


def validation_seed(split_seed: int) -> int:
    """The seed of the validation tracks held out of a training split (Pixel Deflection's search).
    Training and the search must agree, or the search would tune on training tracks."""
    return split_seed + 1


# --- Numbers ------------------------------------------------------------------------------

TABLE1 = {  # black box, lambda 0.002: accuracy on the 40 clean victims, ASR of the transferred stickers
    "baseline": {"accuracy": 1.0, "asr": 0.90},
    "input_blur_3": {"accuracy": 1.0, "asr": 0.875},
    "input_blur_5": {"accuracy": 1.0, "asr": 0.675},
    "l1_blur_3": {"accuracy": 1.0, "asr": 0.65},
    "l1_blur_5": {"accuracy": 0.875, "asr": 0.175},
}

TABLE2 = {  # white box, 300 epochs
    "baseline": {"legit": 0.91, "avg_asr": 0.4918, "worst_asr": 0.90, "l2": 0.207},
    "gaussian_aug_0.1": {"legit": 0.843, "avg_asr": 0.1944, "worst_asr": 0.625, "l2": 0.238},
    "gaussian_aug_0.2": {"legit": 0.844, "avg_asr": 0.5597, "worst_asr": 0.80, "l2": 0.196},
    "gaussian_aug_0.3": {"legit": 0.856, "avg_asr": 0.2139, "worst_asr": 0.25, "l2": 0.198},
    "smoothing_0.1": {"legit": 0.843, "avg_asr": 0.193, "worst_asr": 0.675, "l2": 0.236},
    "smoothing_0.2": {"legit": 0.844, "avg_asr": 0.55, "worst_asr": 0.70, "l2": 0.189},
    "smoothing_0.3": {"legit": 0.856, "avg_asr": 0.225, "worst_asr": 0.225, "l2": 0.198},
    "adv_train": {"legit": 0.779, "avg_asr": 0.1194, "worst_asr": 0.20, "l2": 0.244},
    "conv_3": {"legit": 0.863, "avg_asr": 0.30, "worst_asr": 0.55, "l2": 0.201},
    "conv_5": {"legit": 0.863, "avg_asr": 0.2411, "worst_asr": 0.475, "l2": 0.189},
    "conv_7": {"legit": 0.87, "avg_asr": 0.1161, "worst_asr": 0.30, "l2": 0.203},
    "tv_1e-4": {"legit": 0.856, "avg_asr": 0.0792, "worst_asr": 0.175, "l2": 0.224},
    "tv_1e-5": {"legit": 0.823, "avg_asr": 0.0847, "worst_asr": 0.30, "l2": 0.199},
    "tik_hf": {"legit": 0.845, "avg_asr": 0.05416, "worst_asr": 0.10, "l2": 0.214},
    "tik_pseudo": {"legit": 0.836, "avg_asr": 0.139, "worst_asr": 0.35, "l2": 0.222},
}

TABLE3 = {  # adaptive: low-frequency RP2 (DCT 16) on conv rows, regulariser-aware RP2 on TV / Tik rows
    "conv_3": {"avg_asr": 0.2291, "worst_asr": 0.525, "l2": 0.546},
    "conv_5": {"avg_asr": 0.4625, "worst_asr": 0.75, "l2": 0.539},
    "conv_7": {"avg_asr": 0.10416, "worst_asr": 0.20, "l2": 0.539},
    "tv_1e-4": {"avg_asr": 0.0833, "worst_asr": 0.20, "l2": 0.044},
    "tv_1e-5": {"avg_asr": 0.0611, "worst_asr": 0.25, "l2": 0.046},
    "tik_hf": {"avg_asr": 0.236, "worst_asr": 0.475, "l2": 0.147},
    "tik_pseudo": {"avg_asr": 0.175, "worst_asr": 0.45, "l2": 0.141},
}

# Table IV: PGD L-inf eps 8/255, step 0.01, 10 steps. The paper prints ASR 100% for every model
# and L2 0.44-0.53 (per-model L2 where the text gives it).
TABLE4 = {
    "asr": 1.0,
    "l2": {"tv_1e-4": 0.455, "tv_1e-5": 0.437, "tik_hf": 0.464, "tik_pseudo": 0.443},
    "l2_range": (0.44, 0.53),
}

TABLE5 = {  # the adversarially trained model under each adaptive attack
    "tv": {"avg_asr": 0.0585, "worst_asr": 0.275, "l2": 0.046},
    "tik_hf": {"avg_asr": 0.176, "worst_asr": 0.18, "l2": 0.148},
    "tik_pseudo": {"avg_asr": 0.15, "worst_asr": 0.175, "l2": 0.150},
}

FIG3_CONV7 = {8: 0.35, 16: 0.20}  # worst-case ASR of the low-frequency attack on 7x7 conv (text + Table III)


# Pixel Deflection (Prakash et al. 2018), ImageNet 299x299, ResNet-50, sigma 0.04, window 10,
# 100 deflections; top-1 accuracy (%) on images the classifier got right. Our attack names.
PD_TABLE2 = {  # attack: (no defence, single, Ens-10, L2)
    "clean": (100.0, 98.3, 98.9, 0.00),
    "FGSM": (20.0, 79.9, 81.5, 0.05),
    "BIM": (14.1, 83.7, 83.7, 0.03),
    "C&W L2": (4.8, 92.7, 98.0, 0.04),
    "DeepFool": (26.3, 86.3, 90.3, 0.02),
    "JSMA": (25.5, 91.5, 97.0, 0.02),
    "L-BFGS": (12.1, 88.0, 91.6, 0.02),
}
PD_TABLE3 = {  # ablation (Ens-10): attack -> {column: accuracy}
    "clean": {"JPEG": 96.1, "WD": 98.7, "PD": 97.4, "PD+JPEG": 96.1, "PD+WD": 98.9},
    "FGSM": {"JPEG": 49.1, "WD": 40.6, "PD": 79.7, "PD+JPEG": 81.1, "PD+WD": 81.5},
    "BIM": {"JPEG": 49.1, "WD": 31.2, "PD": 82.4, "PD+JPEG": 82.4, "PD+WD": 83.7},
    "C&W L2": {"JPEG": 85.5, "WD": 95.4, "PD": 95.4, "PD+JPEG": 94.1, "PD+WD": 98.0},
}
PD_TABLE4 = {  # thresholding after deflection
    "clean": {"Hard": 39.5, "VisuShrink": 96.1, "BayesShrink": 98.9},
    "FGSM": {"Hard": 35.9, "VisuShrink": 63.8, "BayesShrink": 81.5},
    "BIM": {"Hard": 42.5, "VisuShrink": 67.8, "BayesShrink": 83.7},
    "C&W L2": {"Hard": 36.8, "VisuShrink": 93.4, "BayesShrink": 98.0},
}

# Defend++ (Liu et al. 2020) on MNIST with ResNet-18 (60,000 training images, SGD, 250 epochs);
# accuracy in % on adversarial and clean test images. FGSM ε 0.2, BIM 100 iterations, C&W 5 x 20.
DEFENDPP_TABLE2 = {  # its Table 2, keyed by our MNIST rows
    "mnist_baseline": {"label": "No defense", "fgsm": 31.94, "bim": 0.00, "cw": 0.00, "ddn": 0.00, "clean": 99.60},
    "mnist_fgsm_train": {"label": "Adv. FGSM", "fgsm": 99.77, "bim": 9.86, "cw": 99.04, "ddn": 99.05, "clean": 99.51},
    "mnist_defendpp": {"label": "ours", "fgsm": 86.81, "bim": 55.37, "cw": 99.08, "ddn": 99.10, "clean": 99.47},
    "mnist_defendpp_gn": {"label": "ours + GN", "fgsm": 90.56, "bim": 56.44, "cw": 98.97, "ddn": 98.98, "clean": 99.41},
}
# The same rows as the paper ran them (ResNet-18, the official split, SGD): our *_resnet18 flagfiles.
DEFENDPP_TABLE2_RESNET18 = {
    f"{row}_resnet18": DEFENDPP_TABLE2[row] for row in ("mnist_baseline", "mnist_defendpp", "mnist_defendpp_gn")
}
DEFENDPP_TABLE1 = {  # its Table 1 (ablation)
    "mnist_defendpp": {"label": "ours", "fgsm": 86.81, "bim": 55.37, "cw": 99.08, "ddn": 99.10, "clean": 99.47},
    "mnist_defendpp_no_lowpass": {
        "label": "ours w/o MS-LP",
        "fgsm": 85.42,
        "bim": 53.48,
        "cw": 99.01,
        "ddn": 99.05,
        "clean": 99.41,
    },
    "mnist_defendpp_hourglass": {
        "label": "Hourglass",
        "fgsm": 85.39,
        "bim": 53.91,
        "cw": 99.03,
        "ddn": 99.05,
        "clean": 99.51,
    },
}
