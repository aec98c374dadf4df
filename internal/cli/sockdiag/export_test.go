package sockdiag

// Request is the dump request, for the layout test.
var Request = request
