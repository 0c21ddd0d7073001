"""theory subpackage of cnnbias."""
