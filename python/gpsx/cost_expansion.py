"""The quadratic cost model of one condition, from the cost's analytic expansion at the samples.

At each sample i and step t the cost is expanded around z̄ = [x̄; ū] (the sample's own state and action):
l(z) ≈ l̄ + gᵀ(z − z̄) + ½ (z − z̄)ᵀ H (z − z̄), with g = [l_x; l_u] and H = [[l_xx, l_uxᵀ], [l_ux, l_uu]].
Re-centred around the origin this is ½ zᵀ H z + zᵀ (g − H z̄) + (l̄ − gᵀz̄ + ½ z̄ᵀ H z̄), and the model handed
to the backward pass is the average of these global forms over the samples (notes/pitfalls.md §cost
expansion).
"""
from __future__ import annotations

import numpy as np

from .containers import QuadraticCost
from .costs import CostDerivatives

__all__ = ["quadratic_cost"]


def quadratic_cost(d: CostDerivatives, X: np.ndarray, U: np.ndarray) -> QuadraticCost:
    """Average over samples of the expansions ``d`` (at X (N,T,dX), U (N,T,dU)) as ½zᵀCz + zᵀc + c0 per step."""
    dX = X.shape[-1]
    z = np.concatenate([X, U], axis=-1)                                      # (N, T, n)
    n = z.shape[-1]
    H = np.empty(z.shape + (n,))
    H[..., :dX, :dX] = d.lxx
    H[..., dX:, dX:] = d.luu
    H[..., dX:, :dX] = d.lux
    H[..., :dX, dX:] = np.swapaxes(d.lux, -1, -2)
    g = np.concatenate([d.lx, d.lu], axis=-1)                                # (N, T, n)
    Hz = (H @ z[..., None])[..., 0]
    c = g - Hz
    c0 = d.l - np.einsum("nti,nti->nt", g, z) + 0.5 * np.einsum("nti,nti->nt", z, Hz)
    return QuadraticCost(H.mean(axis=0), c.mean(axis=0), c0.mean(axis=0))
