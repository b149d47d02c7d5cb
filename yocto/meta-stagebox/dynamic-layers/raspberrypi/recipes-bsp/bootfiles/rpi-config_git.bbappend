# config.txt for a stagebox station on a Raspberry Pi: the serial console for the
# technician, I2S, I2C and SPI for the sound HAT and its LEDs, and the HAT's overlay
# (STAGEBOX_HAT_OVERLAY, from the distribution; see board/hats/*.toml).
RPI_EXTRA_CONFIG:append:stagebox = " \nenable_uart=1\ndtparam=i2c_arm=on\ndtparam=i2s=on\ndtparam=spi=on\ndtoverlay=${STAGEBOX_HAT_OVERLAY}\n"
