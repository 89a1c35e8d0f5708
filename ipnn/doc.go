// Package ipnn implements the Indeterminate Probability Neural Network (IPNN) in pure Go: an MLP
// backbone whose output nodes are split into groups of latent variables (Split), the IPNN head that
// infers P(y | x) from a window of observed joint latent states (Head), its softmax baseline, Adam
// training, and the experiments of the IPNN paper with their reports: the binary-number toy task,
// MNIST-style digits and the 10^k-category number task, clustering measured by the adjusted Rand
// index, and the independence of the latent groups.
//
// Models are saved and loaded with Save and LoadModel; `bpo ipnn` is its command line.
package ipnn
