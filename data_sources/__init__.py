"""Readers of the raw dataset formats, one module per format, plus downloads and the cache.

adult (UCI text), labelled_lines (Purchase100 / Location), idx (MNIST), leaf (FEMNIST json),
cifar_pickle (CIFAR-10 batches); clusters derives the Purchase KMeans variants; download fetches
and checks official files; cache stores processed arrays. Stages use `data_preprocessing.load_dataset`.
"""
