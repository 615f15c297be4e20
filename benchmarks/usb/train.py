"""Train one USB algorithm on geossl's split and test it: the peer of ``peer_usb.py``.

Runs in USB's own virtual environment (``requirements.txt``; ``peer_usb.py`` makes
it), on the tiles and split that ``peer_usb.py`` wrote: USB's algorithm, hooks,
samplers, EMA, optimiser and EuroSAT transforms as semilearn 0.3.2 ships them, with
four changes so that it runs on a CPU and on this split, each marked below:

* modules semilearn imports at module level for its audio and text paths and its
  loggers (torchaudio, transformers, wandb, aim) get stand-ins that raise if used;
* ``Tensor.cuda`` is the identity (USB moves every batch with ``.cuda(gpu)``);
* its timer hook, which records ``torch.cuda.Event``, times with ``perf_counter``;
* the datasets are USB's ``BasicDataset`` over the given tiles, in place of its own
  EuroSAT split.

The test split is evaluated with the best validation step's weights (its EMA when
EMA is on). USB's own end-of-run test, which runs inside its ``train()`` as shipped
(and so inside the time per step), loads the best checkpoint's weights but then
applies the EMA shadow of the last step over them, so it tests the last step: its
result is ignored, and the test is run again with the best step's shadow.

Writes ``result.json`` (test error, best step, seconds per step) and
``curve.csv`` (USB's logged ``util_ratio``, its mask ratio) into ``--output``.
"""

import argparse
import itertools
import json
import random
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

#: What semilearn imports at module level but never calls on the image path.
UNUSED_MODULES = (
    'torchaudio',
    'transformers',
    'transformers.data',
    'transformers.file_utils',
    'transformers.tokenization_utils_base',
    'wandb',
    'aim',
)


def _stand_in(name: str) -> types.ModuleType:
    """A module whose every attribute is a class that raises when used."""

    def unavailable(*args: object, **kwargs: object) -> None:
        raise ImportError(f'{name} is not installed in the USB peer environment')

    def attribute(attr: str) -> type:
        if attr.startswith('__'):  # what introspection asks (__file__, __path__)
            raise AttributeError(attr)
        return type(attr, (), {'__init__': unavailable})

    module = types.ModuleType(name)
    module.__getattr__ = attribute
    return module


# Change 1 of 4: stand-ins for the unused modules, before semilearn is imported.
sys.modules.update({name: _stand_in(name) for name in UNUSED_MODULES})

import timm  # noqa: E402
from semilearn.algorithms import name2alg  # noqa: E402
from semilearn.core.hooks import Hook, TimerHook  # noqa: E402
from semilearn.datasets.augmentation import RandAugment  # noqa: E402
from semilearn.datasets.cv_datasets.datasetbase import BasicDataset  # noqa: E402
from semilearn.lighting import get_config  # noqa: E402
from torchvision import transforms  # noqa: E402

# Change 2 of 4: batches stay on the CPU.
Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]


# Change 3 of 4: the timer hook without CUDA events (what it logs, as USB logs it).
def _record_start(self: TimerHook, algorithm: object) -> None:
    algorithm.batch_start = time.perf_counter()


def _record_prefetch(self: TimerHook, algorithm: object) -> None:
    algorithm.batch_end = time.perf_counter()


def _log_times(self: TimerHook, algorithm: object) -> None:
    algorithm.log_dict['lr'] = algorithm.optimizer.param_groups[-1]['lr']
    prefetch = algorithm.batch_end - algorithm.batch_start
    algorithm.log_dict['train/prefetch_time'] = prefetch
    algorithm.batch_start = time.perf_counter()


TimerHook.before_run = _record_start
TimerHook.before_train_step = _record_prefetch
TimerHook.after_train_step = _log_times

#: USB's EuroSAT settings (semilearn/datasets/cv_datasets/eurosat.py, config files).
MEAN, STD, CROP_RATIO = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 0.875


def eurosat_transforms(size: int) -> dict[str, transforms.Compose]:
    """USB's EuroSAT weak, strong and evaluation transforms, as ``get_eurosat`` builds.

    Args:
        size: the tiles' height and width.

    Returns:
        ``weak``, ``strong`` and ``eval`` transforms of PIL images.
    """
    shift = [
        transforms.Resize(size),
        transforms.RandomCrop(
            (size, size), padding=int(size * (1 - CROP_RATIO)), padding_mode='reflect'
        ),
        transforms.RandomHorizontalFlip(),
        transforms.RandomVerticalFlip(),
    ]
    finish = [transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    return {
        'weak': transforms.Compose([*shift, *finish]),
        'strong': transforms.Compose([*shift, RandAugment(3, 5), *finish]),
        'eval': transforms.Compose([transforms.Resize(size), *finish]),
    }


class TimmNet(nn.Module):
    """A timm backbone and a linear head with USB's network interface.

    Args:
        model: timm model name.
        weights: the backbone's state dict file (its classifier is dropped).
        num_classes: number of classes.
    """

    def __init__(self, model: str, weights: Path, num_classes: int) -> None:
        """Build the network and load the backbone's weights."""
        super().__init__()
        self.backbone = timm.create_model(model, num_classes=0)
        state = torch.load(weights, map_location='cpu', weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith('classifier.')}
        self.backbone.load_state_dict(state)
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    def forward(
        self, x: Tensor, only_fc: bool = False, only_feat: bool = False
    ) -> Tensor | dict[str, Tensor]:
        """USB's contract: ``{'logits', 'feat'}``, or one of them."""
        if only_fc:
            return self.head(x)
        features = self.backbone(x)
        if only_feat:
            return features
        return {'logits': self.head(features), 'feat': features}


class StepClockHook(Hook):
    """Keeps when each training step starts, as geossl's compute report does."""

    def __init__(self) -> None:
        """Start with no steps."""
        self.starts: list[float] = []

    def before_train_step(self, algorithm: object) -> None:
        """Note the step's start (its batch read and transformed)."""
        self.starts.append(time.perf_counter())

    @property
    def median_seconds(self) -> float:
        """The median time from one step's start to the next's."""
        return statistics.median(b - a for a, b in itertools.pairwise(self.starts))


class CurveHook(Hook):
    """Keeps USB's logged mask ratio (``util_ratio``) every ``num_log_iter`` steps."""

    def __init__(self) -> None:
        """Start an empty curve."""
        self.rows: list[dict[str, float]] = []

    def after_train_step(self, algorithm: object) -> None:
        """Keep the step's mask ratio on logging steps."""
        ratio = algorithm.log_dict.get('train/util_ratio')
        if ratio is not None and self.every_n_iters(algorithm, algorithm.num_log_iter):
            self.rows.append({'step': algorithm.it + 1, 'train_mask_ratio': ratio})


def datasets(
    tiles: dict[str, np.ndarray], algorithm: str, size: int, num_classes: int
) -> dict[str, BasicDataset | None]:
    """USB's datasets over the split: labelled, unlabelled (labelled included), val.

    Args:
        tiles: ``images`` (N x H x W x 3 uint8), ``labels`` and ``split`` names.
        algorithm: the USB algorithm name.
        size: the tiles' height and width.
        num_classes: number of classes.

    Returns:
        ``train_lb``, ``train_ulb``, ``eval`` and ``test`` datasets.
    """
    views = eurosat_transforms(size)
    images, labels, split = tiles['images'], tiles['labels'], tiles['split']

    def part(names: tuple[str, ...], **options: object) -> BasicDataset:
        chosen = np.isin(split, names)
        return BasicDataset(
            algorithm, images[chosen], labels[chosen], num_classes, **options
        )

    return {
        'train_lb': part(('labelled',), transform=views['weak']),
        'train_ulb': part(
            ('labelled', 'unlabelled'),
            transform=views['weak'],
            is_ulb=True,
            strong_transform=views['strong'],
        ),
        'eval': part(('val',), transform=views['eval']),
        'test': part(('test',), transform=views['eval']),
    }


def main() -> None:
    """Train, test, and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tiles', type=Path, required=True)
    parser.add_argument('--weights', type=Path, required=True)
    parser.add_argument('--output', type=Path, required=True)
    parser.add_argument('--algorithm', default='fixmatch')
    parser.add_argument('--model', default='tf_efficientnet_lite0')
    parser.add_argument('--steps', type=int, default=1000)
    parser.add_argument('--batch_size', type=int, default=8)
    parser.add_argument('--mu', type=int, default=2)
    parser.add_argument('--ema', type=float, default=0.999)
    parser.add_argument('--lr', type=float, default=3e-4)
    parser.add_argument('--weight_decay', type=float, default=5e-4)
    parser.add_argument('--val_every', type=int, default=200)
    parser.add_argument('--log_every', type=int, default=25)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument(
        '--usb_options',
        type=json.loads,
        default={},
        help="the algorithm's options, by USB's names (JSON)",
    )
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    random.seed(options.seed)
    # USB's global NumPy random state (its RandAugment draws from it).
    np.random.seed(options.seed)  # noqa: NPY002
    torch.manual_seed(options.seed)
    with np.load(options.tiles) as stored:
        tiles = {key: stored[key] for key in stored.files}
    num_classes = int(tiles['labels'].max()) + 1
    size = tiles['images'].shape[1]
    algorithm_name = {'supervised': 'fullysupervised'}.get(
        options.algorithm, options.algorithm
    )
    args = get_config(
        {
            'algorithm': algorithm_name,
            'save_dir': str(options.output),
            'save_name': 'usb',
            'epoch': 1,
            'num_train_iter': options.steps,
            'num_eval_iter': options.val_every,
            'num_log_iter': options.log_every,
            'num_labels': int((tiles['split'] == 'labelled').sum()),
            'batch_size': options.batch_size,
            'uratio': options.mu,
            'eval_batch_size': 256,
            'ema_m': options.ema,
            'optim': 'AdamW',
            'lr': options.lr,
            'weight_decay': options.weight_decay,
            'num_classes': num_classes,
            'img_size': size,
            'crop_ratio': CROP_RATIO,
            'num_workers': 0,
            'seed': options.seed,
            'net': options.model,
            'dataset': 'eurosat',
        }
        | options.usb_options
    )
    args.distributed = False
    split_data = datasets(tiles, algorithm_name, size, num_classes)

    # Change 4 of 4: the datasets of this split in place of USB's EuroSAT split.
    class OnSplit(name2alg[algorithm_name]):
        def set_dataset(self) -> dict[str, BasicDataset | None]:
            self.args.ulb_dest_len = len(split_data['train_ulb'])
            self.args.lb_dest_len = len(split_data['train_lb'])
            return split_data

    def net_builder(num_classes: int, **kwargs: object) -> TimmNet:
        return TimmNet(options.model, options.weights, num_classes)

    algorithm = OnSplit(args, net_builder)
    curve, clock = CurveHook(), StepClockHook()
    algorithm.register_hook(curve, 'CurveHook', 'LOWEST')
    algorithm.register_hook(clock, 'StepClockHook', 'LOWEST')
    start = time.perf_counter()
    algorithm.train()
    train_seconds = time.perf_counter() - start
    # The best validation step's weights, its EMA shadow included.
    algorithm.load_model(str(options.output / 'usb' / 'model_best.pth'))
    algorithm.ema.load(algorithm.ema_model)
    test = algorithm.evaluate('test')
    result = {
        'test_error': 100 * (1 - float(test['test/top-1-acc'])),
        'val_accuracy': float(algorithm.best_eval_acc),
        'best_step': int(algorithm.best_it) + 1,
        'train_minutes': train_seconds / 60,
        'seconds_per_step': train_seconds / options.steps,
        'median_step_seconds': clock.median_seconds,
        'threads': torch.get_num_threads(),
    }
    (options.output / 'result.json').write_text(json.dumps(result, indent=2) + '\n')
    header = 'step,train_mask_ratio\n'
    lines = [f'{row["step"]},{row["train_mask_ratio"]}' for row in curve.rows]
    (options.output / 'curve.csv').write_text(header + '\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
