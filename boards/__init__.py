# Boards: the hardware (or simulated hardware) behind the HAL in docs/hal.md.
