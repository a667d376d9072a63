"""Scenarios and codec spec shared by the simulator tests (import as a plain module)."""

from channels import Scenario

#: Flat AWGN link with perfect CSI: outcomes depend on SNR only.
AWGN = Scenario.from_dict({"name": "awgn-test", "channel": {"model": "AWGN"},
                           "receiver": {"channel_estimation": "perfect"}})
#: Time-varying Rayleigh block fading (Doppler), perfect CSI (fast abstraction).
RAYLEIGH = Scenario.from_dict({"name": "rayleigh-test",
                               "channel": {"model": "RAYLEIGH", "ue_speed_kmh": 30},
                               "receiver": {"channel_estimation": "perfect"}})
#: The same fading with LS channel estimation from the grid's pilots (abstraction: the SINR
#: of the estimate, so the pilot symbols and the noise on them change outcomes).
RAYLEIGH_LS = Scenario.from_dict({"name": "rayleigh-ls-test",
                                  "channel": {"model": "RAYLEIGH", "ue_speed_kmh": 30},
                                  "receiver": {"channel_estimation": "ls"}})
BASELINE = "sim.baseline_codec:BaselineCodec"
