"""What each tile's nearest neighbours were last taken to be: the teacher's prior.

Land cover changes over kilometres: on EuroSAT a tile's nearest neighbour, median
782 m away, has its class 80 % of the time. A teacher that sees only a location
encoding has to learn that map of classes from pseudo-labels it sees about once in a
short run; a memory hands it over instead. :class:`NeighbourMemory` links every
sample to its nearest training samples within a radius (by great-circle distance,
never itself) and keeps, per training sample, what it was last taken to be: its
label for a labelled sample, the teacher's latest weak-view probabilities for an
unlabelled one. The teacher's prediction for a tile is its network's, weighted by
how often each class occurs among the tile's known neighbours
(:meth:`NeighbourMemory.log_prior`, added to its logits): a non-parametric map of
the classes at the neighbours' scale, which needs no training. Samples without a
location, and those with no training sample within the radius (a region never
trained on), get a flat prior, so the teacher falls back to its network there.
"""

import numpy as np
import torch
from torch import Tensor, nn

from geossl.data.geodesy import chord, unit_vectors
from geossl.ssl.distributed import gather_across_processes


class NeighbourMemory(nn.Module):
    """Class probabilities of every training sample, read through its neighbours.

    The links and the memory are buffers, so a checkpoint resumes them. The memory
    holds probabilities in 1/255 steps as bytes: a quarter of float32's size, and,
    being no floats, taken as they are by the weights' moving average rather than
    averaged. Labels, once given, are kept; predictions replace predictions.

    Args:
        num_samples: samples of the dataset (the positions ``index`` refers to).
        num_classes: number of classes.
        neighbours: how many nearest training samples each sample reads.
        radius_km: the farthest a neighbour may be.
    """

    def __init__(
        self,
        num_samples: int,
        num_classes: int,
        neighbours: int = 8,
        radius_km: float = 5.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.radius_km = radius_km
        self.register_buffer(
            'links', torch.full((num_samples, neighbours), -1, dtype=torch.long)
        )
        self.register_buffer(
            'memory', torch.zeros(num_samples, num_classes, dtype=torch.uint8)
        )
        self.register_buffer('known', torch.zeros(num_samples, dtype=torch.bool))
        self.register_buffer('labelled', torch.zeros(num_samples, dtype=torch.bool))

    def connect(self, lon: Tensor, lat: Tensor, pool: Tensor) -> None:
        """Link every sample to its nearest samples of the pool within the radius.

        Args:
            lon: ``(N,)`` longitudes in degrees, NaN where unknown.
            lat: ``(N,)`` latitudes in degrees, NaN where unknown.
            pool: positions of the training samples (labelled and unlabelled).
        """
        # A k-d tree of the pool's unit vectors (imported here, as only this needs
        # scikit-learn, which is slow to import).
        from sklearn.neighbors import KDTree

        points = unit_vectors(lon.double().cpu().numpy(), lat.double().cpu().numpy())
        located = np.isfinite(points).all(axis=1)
        pool = pool.cpu().numpy()
        pool = pool[located[pool]]
        count = min(self.links.shape[1], max(len(pool) - 1, 0))
        self.links.fill_(-1)
        rows = np.flatnonzero(located)
        if not count or not len(rows):
            return
        # One more than wanted: a sample of the pool finds itself among them.
        distances, found = KDTree(points[pool]).query(points[rows], k=count + 1)
        found = pool[found]
        others = found != rows[:, None]
        # Never itself; a sample outside the pool drops its farthest instead.
        others[others.all(axis=1), -1] = False
        found = found[others].reshape(len(rows), count)
        distances = distances[others].reshape(len(rows), count)
        links = np.where(distances <= chord(self.radius_km), found, -1)
        self.links[torch.as_tensor(rows), :count] = torch.as_tensor(links).to(
            self.links
        )

    @torch.no_grad()
    def remember(
        self,
        index: Tensor,
        probabilities: Tensor,
        labels: bool = False,
        kept: Tensor | None = None,
    ) -> None:
        """Keep the latest class probabilities of some samples (of every process).

        Args:
            index: ``(B,)`` sample positions.
            probabilities: ``(B, K)`` their probabilities, or their labels.
            labels: the rows are labels, which predictions never replace.
            kept: ``(B,)`` which rows to keep; None for all. Filtered after the
                rows of every process are gathered, which must be of one size.
        """
        if kept is None:
            kept = torch.ones_like(index, dtype=torch.bool)
        index = gather_across_processes(index.to(self.links.device))
        probabilities = gather_across_processes(probabilities.detach())
        # As bytes: not every backend gathers booleans.
        kept = gather_across_processes(kept.to(self.links.device, torch.uint8)).bool()
        if not labels:
            kept = kept & ~self.labelled[index]
        index, probabilities = index[kept], probabilities[kept]
        self.memory[index] = (probabilities.clamp(0, 1) * 255).round().to(torch.uint8)
        self.known[index] = True
        self.labelled[index] |= labels

    def log_prior(self, index: Tensor, multilabel: bool = False) -> Tensor:
        """The log class frequencies among the samples' known neighbours, smoothed.

        Each class counts its share of every known neighbour's remembered
        probabilities, plus one (Laplace's rule): a sample with no known neighbour
        gets a flat prior, one with eight alike about a 9 to 1 preference.

        Args:
            index: ``(B,)`` sample positions.
            multilabel: each class is present or not (a Beta prior per class, as
                log-odds) rather than one of K (a Dirichlet prior, as log
                probabilities).

        Returns:
            ``(B, K)``, to add to the logits.
        """
        links = self.links[index.to(self.links.device)]
        known = (links >= 0) & self.known[links.clamp(min=0)]
        remembered = self.memory[links.clamp(min=0)].float() / 255
        present = (remembered * known[..., None]).sum(dim=1)
        counted = known.sum(dim=1, keepdim=True).float()
        if multilabel:
            return torch.log((present + 1) / (counted - present + 1))
        return torch.log((present + 1) / (counted + self.num_classes))
