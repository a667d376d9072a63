"""No evaluation scene was trained on: the registry's training and evaluation seeds are
disjoint, and the stages use the registry's values."""

from benchmark import seeds


def test_training_and_evaluation_seeds_are_disjoint():
    assert not set(seeds.TRAINING.values()) & set(seeds.EVALUATION.values())
    assert len(set(seeds.EVALUATION.values())) == len(seeds.EVALUATION)


def test_stages_use_the_registry():
    from sim.config import SimConfig
    from training import captioner as train_captioner
    from training import dpcd as train_dpcd
    from training import hci as train_hci
    from training import prior as train_prior

    assert train_dpcd.TRAIN_SEED == train_prior.TRAIN_SEED == seeds.PRIOR_TRAIN
    assert train_hci.TRAIN_SEED == seeds.HCI_TRAIN and train_hci.EVAL_SEED == seeds.HCI_EVAL
    assert train_captioner.TRAIN_SEED == seeds.CAPTIONER_TRAIN
    assert SimConfig.__dataclass_fields__["dataset"].default_factory()["seed"] == seeds.SIMULATOR
