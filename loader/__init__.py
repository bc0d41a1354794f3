"""weightseal.loader"""
