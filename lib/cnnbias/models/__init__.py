"""models subpackage of cnnbias."""
