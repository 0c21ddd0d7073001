"""data subpackage of cnnbias."""
