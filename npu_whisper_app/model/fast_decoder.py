def attach_fast_decoder(model, quant="none"):
    return None
