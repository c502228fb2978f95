"""`gptlab bench`: step time, tokens/s, MFU and memory, with each speed feature on and off."""
