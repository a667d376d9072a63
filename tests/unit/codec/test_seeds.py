"""No evaluation scene was trained on: the registry's training and evaluation seeds are
disjoint, and the stages use the registry's values."""

from codec.data import seeds


def test_training_and_evaluation_seeds_are_disjoint():
    assert not set(seeds.TRAINING.values()) & set(seeds.EVALUATION.values())
    assert len(set(seeds.EVALUATION.values())) == len(seeds.EVALUATION)


def test_stages_use_the_registry():
    from codec import train_captioner
    from codec.dpcd import train_dpcd, train_prior
    from codec.streams import train_hci
    from sim.config import SimConfig

    assert train_dpcd.TRAIN_SEED == train_prior.TRAIN_SEED == seeds.PRIOR_TRAIN
    assert train_hci.TRAIN_SEED == seeds.HCI_TRAIN and train_hci.EVAL_SEED == seeds.HCI_EVAL
    assert train_captioner.TRAIN_SEED == seeds.CAPTIONER_TRAIN
    assert SimConfig.__dataclass_fields__["dataset"].default_factory()["seed"] == seeds.SIMULATOR
