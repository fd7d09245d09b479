"""Assignment (派车) of a vehicle and driver, the driver's flow, and the optimizer seam."""
