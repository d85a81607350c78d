import torch

from contrast.nn.geometry import bessel_rbf, gaussian_rbf, polynomial_envelope


def test_envelope_is_one_at_zero_and_flat_to_second_order_at_cutoff():
    cutoff = 4.0
    d = torch.tensor([0.0, cutoff, cutoff + 0.5], dtype=torch.float64, requires_grad=True)
    u = polynomial_envelope(d, cutoff)
    assert torch.allclose(u.detach(), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    (du,) = torch.autograd.grad(u.sum(), d, create_graph=True)
    (d2u,) = torch.autograd.grad(du.sum(), d)
    assert abs(du[1].item()) < 1e-12 and abs(d2u[1].item()) < 1e-10
    # Monotone decrease between the ends, checked on a fine grid.
    grid = torch.linspace(0, cutoff, 401, dtype=torch.float64)
    assert (polynomial_envelope(grid, cutoff).diff() <= 1e-15).all()


def test_radial_bases_match_their_formulas():
    d = torch.tensor([0.7, 2.5], dtype=torch.float64)
    g = gaussian_rbf(d, 5, 4.0)  # centres 0, 1, 2, 3, 4 with width 1
    assert torch.allclose(g[1, 2], torch.exp(torch.tensor(-0.125, dtype=torch.float64)))
    b = bessel_rbf(d, 3, 4.0)
    expected = (2 / 4.0) ** 0.5 * torch.sin(torch.tensor(2 * torch.pi * 0.7 / 4.0, dtype=torch.float64)) / 0.7
    assert torch.allclose(b[0, 1], expected)
    assert g.shape == (2, 5) and b.shape == (2, 3)
