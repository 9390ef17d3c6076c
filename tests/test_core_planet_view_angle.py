"""True view angle (REFERENCE §3), hand-computed cases."""
import numpy as np

from core.planet.view_angle import true_view_angle


def test_sign_rule_on_hand_computed_cases():
    view = [3.0, 3.0, 3.0, 3.0, 3.0, 4.5, 2.0, 2.0]
    azimuth = [5.0, 9.99, 10.0, 100.0, 190.0, 190.01, 350.0, 370.0]  # 370 = 10 deg: east
    expected = [-3.0, -3.0, 3.0, 3.0, 3.0, -4.5, -2.0, 2.0]
    assert np.array_equal(true_view_angle(view, azimuth), expected)


def test_scan_line_azimuth_moves_the_boundary_and_nan_propagates():
    assert true_view_angle(2.0, 8.0, scan_line_azimuth=7.0) == 2.0
    assert true_view_angle(2.0, 8.0, scan_line_azimuth=12.0) == -2.0
    assert true_view_angle(-2.0, 100.0) == 2.0  # the sign comes from the azimuth only
    assert np.isnan(true_view_angle(2.0, np.nan))
