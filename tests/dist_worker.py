"""Subprocess entry for the distribution tests (logical CPU devices must be configured before TF starts).

`python tests/dist_worker.py replicas DATA_DIR OUT.npz [OPTIONS_JSON]`: one minibatch of the same images and latents
with (a) the default strategy, batch_gpu 2 -> 2 accumulation rounds, and (b) MirroredStrategy over 2 logical CPUs,
batch_gpu 2 -> 1 round; writes both results (weights, Adam's second moments and the augmentation probability p).
OPTIONS_JSON: more TrainingOptions fields, e.g. '{"aug": "ada"}'.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main() -> None:
    mode, data_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    assert mode == "replicas"
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tests.train_helpers import make_trainer, trainer_weights
    reals = tf.constant(np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3)), tf.uint8)
    results = {}
    for name, strategy in (("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                                                  cross_device_ops=tf.distribute.ReductionToOneDevice()))):
        t = make_trainer(os.path.join(os.path.dirname(out), name), data_dir, batch_size=4, batch_gpu=2,
                     eager=True, strategy=strategy, **extra)
        assert t.steps.rounds == (2 if name == "one" else 1)
        for step in range(2):
            t.steps.minibatch(reals, None, step=step * 16)  # step 0 and 16: R1 steps too
        results.update({f"{name}:{k}": v for k, v in trainer_weights(t).items()})
        results[f"{name}:augment/p"] = t.aug_state.p.numpy()
        for opt in ("g_opt", "d_opt"):  # Adam's second moments carry the gradients' scale (weights do not)
            results.update({f"{name}:{opt}/v{i}": v.numpy() for i, v in enumerate(getattr(t, opt).v)})
    np.savez(out, **results)


if __name__ == "__main__":
    main()
