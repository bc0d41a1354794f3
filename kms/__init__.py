"""weightseal.kms"""
