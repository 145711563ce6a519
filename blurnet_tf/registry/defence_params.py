"""The defences and classifiers build_model knows and the parameters each defence takes: names only, so that
a binary checks
--defence and its flags without importing TensorFlow."""

# Parameters each defence takes (the train binary passes these flags through).
DEFENCE_PARAMS = {
    "baseline": (),
    "input_blur": ("kernel_size", "blur_kernel", "blur_sigma"),
    "l1_blur": ("kernel_size", "blur_kernel", "blur_sigma"),
    "conv": ("kernel_size", "alpha", "blur_kernel", "blur_sigma"),
    "tv": ("alpha",),
    "tik_hf": ("alpha", "tik_window"),
    "tik_pseudo": ("alpha", "tik_pseudo_mode"),
    "gaussian_aug": ("sigma",),
    "adv_train": ("pgd_eps", "pgd_step", "pgd_steps"),
    "fgsm_train": ("fgsm_eps",),
    "defendpp": (
        "decoder",
        "low_pass_weight",
        "reconstruction_weight",
        "gn_sigma",
        "schedule",
        "alternating_cycles",
        "alternating_epochs",
    ),
}
DEFENCES = tuple(DEFENCE_PARAMS)
# The classifiers of each dataset (registry.builders.ARCHITECTURES builds them).
DATASET_ARCHITECTURES = {"lisa": ("lisa_cnn",), "mnist": ("mnist_resnet", "mnist_resnet18")}
