import pytest
import torch

from geossl.errors import GeosslInputError
from geossl.models.classifier import Classifier
from geossl.models.memory_format import memory_format_for, use_memory_format

CPU, CUDA = torch.device('cpu'), torch.device('cuda')


def _is_channels_last(network):
    weights = [p for p in network.parameters() if p.ndim == 4]
    return all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)


@pytest.mark.parametrize(
    ('model', 'device', 'expected'),
    [
        ('tf_efficientnet_lite0', CPU, torch.channels_last),
        ('mobilenetv3_small_050', CPU, torch.channels_last),
        ('resnet18', CPU, torch.contiguous_format),  # measured: no faster
        ('tf_efficientnet_lite0', CUDA, torch.contiguous_format),  # not measured
    ],
)
def test_auto_lays_out_channels_last_where_measured_faster(model, device, expected):
    network = Classifier(model, 3, 10, 32)
    assert memory_format_for(network, device) == expected
    assert memory_format_for(network, device, 'channels_last') == torch.channels_last
    assert memory_format_for(network, device, 'contiguous') == torch.contiguous_format


def test_an_unknown_memory_format_is_refused():
    with pytest.raises(GeosslInputError, match=r'memory_format.*use auto'):
        memory_format_for(Classifier('resnet18', 3, 10, 32), CPU, 'nhwc')


def test_channels_last_gives_the_same_outputs_and_gradients():
    # In evaluation mode: batch statistics of 1 x 1 feature maps over 6 images
    # amplify any rounding (float32 gradients of either layout differ from
    # float64's by 10 % there), which would hide a real difference.
    torch.manual_seed(0)
    images = torch.randn(6, 4, 32, 32)
    networks, outputs = [], []
    for layout in ('contiguous', 'channels_last'):
        torch.manual_seed(1)
        network = Classifier('tf_efficientnet_lite0', 4, 5, 32).eval()
        use_memory_format(network, CPU, layout)
        logits = network(images).logits
        logits.logsumexp(dim=1).mean().backward()
        networks.append(network)
        outputs.append(logits.detach())
    contiguous, channels_last = networks
    assert _is_channels_last(channels_last)
    assert not _is_channels_last(contiguous)
    torch.testing.assert_close(outputs[0], outputs[1])
    for a, b in zip(contiguous.parameters(), channels_last.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
